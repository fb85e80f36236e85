// The Flex Consumption Function App (Linux, Python 3.11) and its workspace-based Application Insights.
// Every setting below is one the code reads (auditsync/config.py SETTINGS) or one the Functions host
// reads; no secret is set here: tokens and the workspace key stay in Key Vault.
param name string
param location string
param tags object
param workspaceResourceId string
param workspaceCustomerId string
param storageAccountName string
param blobEndpoint string
param tableEndpoint string
param deploymentContainerName string
param checkpointTableName string
param keyVaultUri string
param keeperTokenSecretName string
param onePasswordTokenSecretName string
param workspaceKeySecretName string
param ingestionEndpoint string
param dcrImmutableId string
param sinkMode string
param sources string
param keeperBaseUrl string
param onePasswordBaseUrl string
param onePasswordEventTypes string
param timerSchedule string
param initialLookback string
param tenantRegistry string
param workQueueName string
param maximumInstanceCount int

var legacyMode = sinkMode == 'data_collector'

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${name}-ai'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspaceResourceId
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${name}-plan'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        // Queue workers scale out by queue length up to this; per-instance concurrency is host.json's
        // extensions.queues (batchSize + newBatchThreshold).
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      http20Enabled: true
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'Authorization=AAD'
        }
        {
          // The queue functions also export a tenant's lines with tenant and stream as customDimensions
          // (auditsync/app_insights.py), with the managed identity (Monitoring Metrics Publisher).
          name: 'TENANT_LOG_EXPORT'
          value: 'true'
        }
        {
          name: 'SOURCES'
          value: sources
        }
        {
          name: 'KEEPER_BASE_URL'
          value: keeperBaseUrl
        }
        {
          name: 'ONEPASSWORD_BASE_URL'
          value: onePasswordBaseUrl
        }
        {
          name: 'ONEPASSWORD_EVENT_TYPES'
          value: onePasswordEventTypes
        }
        {
          name: 'KEY_VAULT_URL'
          value: keyVaultUri
        }
        {
          name: 'KEEPER_TOKEN_SECRET'
          value: keeperTokenSecretName
        }
        {
          name: 'ONEPASSWORD_TOKEN_SECRET'
          value: onePasswordTokenSecretName
        }
        {
          name: 'SINK'
          value: sinkMode
        }
        {
          name: 'LOGS_INGESTION_ENDPOINT'
          value: ingestionEndpoint
        }
        {
          name: 'LOGS_INGESTION_RULE_ID'
          value: dcrImmutableId
        }
        {
          name: 'WORKSPACE_ID'
          value: legacyMode ? workspaceCustomerId : ''
        }
        {
          name: 'WORKSPACE_KEY_SECRET'
          value: workspaceKeySecretName
        }
        {
          name: 'CHECKPOINT_STORE'
          value: 'table'
        }
        {
          name: 'CHECKPOINT_TABLE_URL'
          value: tableEndpoint
        }
        {
          name: 'CHECKPOINT_TABLE'
          value: checkpointTableName
        }
        {
          name: 'INITIAL_LOOKBACK'
          value: initialLookback
        }
        {
          name: 'TIMER_SCHEDULE'
          value: timerSchedule
        }
        {
          name: 'TENANT_REGISTRY'
          value: tenantRegistry
        }
        {
          name: 'WORK_QUEUE'
          value: workQueueName
        }
      ]
    }
  }
}

output name string = site.name
output id string = site.id
output principalId string = site.identity.principalId
output appInsightsName string = appInsights.name
