// The vault holding the vendor tokens (and, in legacy mode, the workspace key). RBAC mode: the app reads
// secrets with its managed identity (Key Vault Secrets User), nobody gets access policies.
param name string
param location string
param tags object

@secure()
param keeperApiToken string

@description('never, 24h, 7d, 30d or 1y: the Keeper token\'s lifetime; its secret expires an hour short of it.')
param keeperApiTokenExpires string

@description('Where the lifetime counts from: the deployment\'s time.')
param deploymentTime string

@secure()
param onePasswordApiToken string

@description('Legacy Data Collector mode: copy the workspace primary key into the vault (read with listKeys, never passed as a parameter).')
param storeWorkspaceKey bool

param workspaceResourceId string

@description('Send the vault\'s audit logs to the workspace (resource-specific table AZKVAuditLogs).')
param enableAuditLogs bool

var keeperTokenSecretName = 'keeper-api-token'
// Keeper's --expires choices as ISO 8601 durations.
var keeperTokenLifetimes = {
  '24h': 'PT24H'
  '7d': 'P7D'
  '30d': 'P30D'
  '1y': 'P365D'
}
var onePasswordTokenSecretName = 'onepassword-api-token'
var workspaceKeySecretName = 'workspace-shared-key'
var workspaceIdParts = split(workspaceResourceId, '/')

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: last(workspaceIdParts)
  scope: resourceGroup(workspaceIdParts[2], workspaceIdParts[4])
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
  }
}

resource keeperSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(keeperApiToken)) {
  parent: vault
  name: keeperTokenSecretName
  properties: {
    value: keeperApiToken
    contentType: 'text/plain'
    attributes: keeperApiTokenExpires == 'never' ? {} : {
      exp: dateTimeToEpoch(dateTimeAdd(dateTimeAdd(deploymentTime, keeperTokenLifetimes[keeperApiTokenExpires]), '-PT1H'))
    }
  }
}

resource onePasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(onePasswordApiToken)) {
  parent: vault
  name: onePasswordTokenSecretName
  properties: {
    value: onePasswordApiToken
    contentType: 'text/plain'
  }
}

resource workspaceKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (storeWorkspaceKey) {
  parent: vault
  name: workspaceKeySecretName
  properties: {
    value: workspace.listKeys().primarySharedKey
    contentType: 'text/plain'
  }
}

// Who read which secret, when, from where, and failed attempts: the `audit` category group (AuditEvent)
// into resource-specific tables (AZKVAuditLogs) rather than the shared AzureDiagnostics table.
resource auditLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (enableAuditLogs) {
  name: 'auditsync-keyvault-audit'
  scope: vault
  properties: {
    workspaceId: workspaceResourceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output keeperTokenSecretName string = keeperTokenSecretName
output onePasswordTokenSecretName string = onePasswordTokenSecretName
output workspaceKeySecretName string = storeWorkspaceKey ? workspaceKeySecretName : ''
