// Connector health in the portal: log alerts on AuditSyncHealth_CL, one alert per tenant and stream
// (dimensions Tenant, Stream; Tenant is empty for a single-tenant deployment), with an optional email action group.
param namePrefix string
param location string
param tags object
param workspaceResourceId string
param lagThresholdMinutes int
param alertEmail string

var notify = !empty(alertEmail)
var lagThresholdSeconds = lagThresholdMinutes * 60

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (notify) {
  name: '${namePrefix}-health'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'auditsync'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource noHeartbeat 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-no-heartbeat'
  location: location
  tags: tags
  properties: {
    displayName: 'auditsync: no heartbeat from a stream for 15 minutes'
    description: 'A stream wrote no health row for 15 minutes: the Function App is stopped, failing to start, or cannot reach the workspace.'
    severity: 2
    enabled: true
    scopes: [
      workspaceResourceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: 'AuditSyncHealth_CL | summarize LastSeen = max(TimeGenerated) by Tenant, Stream | where LastSeen < ago(15m)'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'Tenant'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'Stream'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: notify ? [
        actionGroup.id
      ] : []
    }
  }
}

resource errorRows 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-stream-error'
  location: location
  tags: tags
  properties: {
    displayName: 'auditsync: a stream reported an error'
    description: 'A health row has Status error; its Message and Hint say what failed and what to do.'
    severity: 1
    enabled: true
    scopes: [
      workspaceResourceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'AuditSyncHealth_CL | where Status == "error" | project TimeGenerated, Tenant, Stream, ErrorKind, Message, Hint'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'Tenant'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'Stream'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: notify ? [
        actionGroup.id
      ] : []
    }
  }
}

resource lag 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-stream-lag'
  location: location
  tags: tags
  properties: {
    displayName: 'auditsync: a stream is behind'
    description: 'Events delivered by a run were older than the lag threshold: the connector is catching up or throttled.'
    severity: 3
    enabled: true
    scopes: [
      workspaceResourceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'AuditSyncHealth_CL | where Status in ("ok", "behind") and LagSeconds > ${lagThresholdSeconds} | project TimeGenerated, Tenant, Stream, LagSeconds'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'Tenant'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'Stream'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: notify ? [
        actionGroup.id
      ] : []
    }
  }
}
