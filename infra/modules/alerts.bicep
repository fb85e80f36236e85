// Connector health in the portal. A dead-app alert that fires when no health row at all arrived (an
// empty table included) and clears only when rows arrive again; per-tenant-and-stream log alerts
// on AuditSyncHealth_CL (dimensions Tenant, Stream; Tenant is empty for a single tenant); two token
// expiry alerts per tenant and source (tokenExpiryWarningDays, then 3 days); failed function executions
// from Application Insights; an optional email action group. tools/build_infra.py writes the same rules
// into azuredeploy.json.
param namePrefix string
param location string
param tags object
param workspaceResourceId string
param lagThresholdMinutes int
param tokenExpiryWarningDays int
param alertEmail string
param appInsightsName string
param appInsightsLocation string

var notify = !empty(alertEmail)
var lagThresholdSeconds = lagThresholdMinutes * 60

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

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

// count() over no rows still returns one row (0): fires for an app that never ran, not only one that stopped.
resource noHealthRows 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-no-health-rows'
  location: location
  tags: tags
  properties: {
    displayName: 'auditsync: no health row at all for 15 minutes (connector down)'
    description: 'No stream wrote a health row for 15 minutes, or none ever did: the Function App has no code, fails to start, is stopped, or cannot reach the workspace. Resolves only when rows arrive again.'
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
          query: 'AuditSyncHealth_CL | where TimeGenerated > ago(15m) | summarize HealthRows = count() | where HealthRows == 0'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
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

// Each token's last known expiry (the newest health row of its tenant and source that knows it), in days
// from now: an alert per token, resolved once the runs read the next token.
resource tokenExpiring 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-token-expiring'
  location: location
  tags: tags
  properties: {
    displayName: 'auditsync: an API token expires soon'
    description: 'A Keeper or 1Password API token expires within the days of the tokenExpiryWarningDays parameter (as its Key Vault secret or the token itself says): issue a new token and store it as a new version of its secret before then (docs/tokens.md). Resolves when the runs read the new token.'
    severity: 2
    enabled: true
    scopes: [
      workspaceResourceId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: 'AuditSyncHealth_CL | where isnotnull(TokenExpiresOn) | summarize arg_max(TimeGenerated, TokenExpiresOn, Stream) by Tenant, Source | extend DaysLeft = round((TokenExpiresOn - now()) / 1d, 1) | where DaysLeft <= ${tokenExpiryWarningDays} | project TimeGenerated, Tenant, Source, Stream, TokenExpiresOn, DaysLeft'
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
              name: 'Source'
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

resource tokenExpiringUrgent 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-token-expiring-urgent'
  location: location
  tags: tags
  properties: {
    displayName: 'auditsync: an API token expires within 3 days'
    description: 'A Keeper or 1Password API token expires within 3 days, or has expired: collection stops when it does. Issue a new token and store it as a new version of its Key Vault secret (docs/tokens.md). Resolves when the runs read the new token.'
    severity: 1
    enabled: true
    scopes: [
      workspaceResourceId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: 'AuditSyncHealth_CL | where isnotnull(TokenExpiresOn) | summarize arg_max(TimeGenerated, TokenExpiresOn, Stream) by Tenant, Source | extend DaysLeft = round((TokenExpiresOn - now()) / 1d, 1) | where DaysLeft <= 3 | project TimeGenerated, Tenant, Source, Stream, TokenExpiresOn, DaysLeft'
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
              name: 'Source'
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

// The host records every invocation in Application Insights; an invocation fails when a stream failed
// (function_app.py), when the app cannot import, or when the host kills it.
resource failedExecutions 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-failed-executions'
  location: appInsightsLocation
  tags: tags
  properties: {
    displayName: 'auditsync: function executions failed'
    description: 'Application Insights recorded failed executions of the collect function: see the exception in Application Insights (Failures) and the Message and Hint of the health rows.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'requests | where success == false | project timestamp, operation_Name, resultCode, cloud_RoleName'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
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
