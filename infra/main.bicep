// auditsync: the whole connector in one deployment (the Deploy to Azure button deploys azuredeploy.json,
// which tests keep in step with this file). See docs/deployment.md.
targetScope = 'resourceGroup'

@description('Region of the connector (Function App, storage, Key Vault, Application Insights). The data collection rule always goes to the workspace region.')
param location string = resourceGroup().location

@description('Resource id of the existing Log Analytics workspace (optionally Sentinel-enabled) that receives the events.')
param workspaceResourceId string

@description('Short prefix for resource names (letters and digits).')
@minLength(3)
@maxLength(9)
param namePrefix string = 'auditsync'

@description('Sources to collect.')
@allowed([
  'keeper,onepassword'
  'keeper'
  'onepassword'
])
param sources string = 'keeper,onepassword'

@description('Keeper region host.')
@allowed([
  'https://keepersecurity.com'
  'https://keepersecurity.eu'
  'https://keepersecurity.com.au'
  'https://keepersecurity.ca'
  'https://keepersecurity.jp'
  'https://govcloud.keepersecurity.us'
])
param keeperBaseUrl string = 'https://keepersecurity.com'

@description('1Password Events API host of your account region.')
@allowed([
  'https://events.1password.com'
  'https://events.ent.1password.com'
  'https://events.1password.ca'
  'https://events.1password.eu'
])
param onePasswordBaseUrl string = 'https://events.1password.com'

@description('1Password event types to collect (comma separated: auditevents, itemusages, signinattempts).')
param onePasswordEventTypes string = 'auditevents,itemusages,signinattempts'

@description('Keeper Admin REST API token. Stored only in Key Vault; leave empty to add the secret later.')
@secure()
param keeperApiToken string = ''

@description('The lifetime you gave the Keeper API token (public-api-key generate --expires): its Key Vault secret expires one hour short of it, counted from this deployment, so check, status, the workbook and the alerts warn before the token stops working. never: no expiry.')
@allowed([
  'never'
  '24h'
  '7d'
  '30d'
  '1y'
])
param keeperApiTokenExpires string = 'never'

@description('When this deployment runs (leave the default): where keeperApiTokenExpires counts from.')
param deploymentTime string = utcNow()

@description('1Password Events API bearer token. Stored only in Key Vault; leave empty to add the secret later.')
@secure()
param onePasswordApiToken string = ''

@description('logs_ingestion (DCR-based tables, recommended) or data_collector (legacy HTTP Data Collector API, retired by Microsoft on 2026-09-14).')
@allowed([
  'logs_ingestion'
  'data_collector'
])
param sinkMode string = 'logs_ingestion'

@description('URL of the function package zip. The default is this release\'s asset (self-contained: dependencies included, no remote build); host a copy yourself in a locked-down tenant.')
param packageUrl string = 'https://github.com/auditsync/auditsync/releases/download/v0.1.0/auditsync-0.1.0.zip'

@description('NCRONTAB schedule of the collection timer (UTC, seconds first).')
param timerSchedule string = '0 */5 * * * *'

@description('History pulled by a stream\'s very first run (for example 1d, 12h).')
param initialLookback string = '1d'

@description('none: one tenant, the tokens above. table: many tenants from the auditsynctenants table (python -m auditsync tenants add ...); the timer dispatches to a queue, queue workers scale out (docs/scale-out.md).')
@allowed([
  'none'
  'table'
])
param tenantRegistry string = 'none'

@description('Most Flex Consumption instances the queue workers may scale out to (many tenants).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Raise the lag alert when delivered events are older than this many minutes.')
@minValue(5)
param lagThresholdMinutes int = 60

@description('Raise the token expiry alert when a Keeper or 1Password API token expires within this many days (a second, more severe alert follows at 3 days).')
@minValue(4)
@maxValue(180)
param tokenExpiryWarningDays int = 14

@description('Email address for connector health alerts; empty = alerts without notification.')
param alertEmail string = ''

@description('Install the auditsync Sentinel solution: connector page, parsers, hunting queries, and analytics rule and workbook templates (no rule is turned on). Needs Microsoft Sentinel on the workspace (already enabled, or onboardSentinel).')
param deploySentinelContent bool = false

@description('Enable Microsoft Sentinel on the workspace (leave off if it is already enabled).')
param onboardSentinel bool = false

@description('Send the Key Vault\'s audit logs (who read which secret, from where; failed attempts) to the workspace.')
param enableKeyVaultAuditLogs bool = true

@description('Tags for every resource the template creates.')
param tags object = {}

var workspaceIdParts = split(workspaceResourceId, '/')
var workspaceSubscriptionId = workspaceIdParts[2]
var workspaceResourceGroup = workspaceIdParts[4]
var workspaceName = last(workspaceIdParts)
var suffix = uniqueString(resourceGroup().id, workspaceResourceId)
var compactPrefix = toLower(replace(namePrefix, '-', ''))
var functionAppName = '${namePrefix}-func-${suffix}'
var storageAccountName = '${compactPrefix}${suffix}'
var keyVaultName = 'kv-${take(compactPrefix, 7)}-${suffix}'
var dcrName = '${namePrefix}-dcr-${suffix}'
var legacyMode = sinkMode == 'data_collector'
// Written by tools/build_infra.py from pyproject.toml (repository) and auditsync/__init__.py (version).
var codeTemplateUrl = 'https://raw.githubusercontent.com/auditsync/auditsync/v0.1.0/infra/codeDeployment.json'

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
  scope: resourceGroup(workspaceSubscriptionId, workspaceResourceGroup)
}

module tables 'modules/tables.bicep' = {
  name: 'auditsync-tables'
  scope: resourceGroup(workspaceSubscriptionId, workspaceResourceGroup)
  params: {
    workspaceName: workspaceName
  }
}

module dcr 'modules/dcr.bicep' = {
  name: 'auditsync-dcr'
  params: {
    name: dcrName
    location: workspace.location
    workspaceResourceId: workspaceResourceId
    tags: tags
  }
  dependsOn: [
    tables
  ]
}

module storage 'modules/storage.bicep' = {
  name: 'auditsync-storage'
  params: {
    name: storageAccountName
    location: location
    tags: tags
  }
}

module keyVault 'modules/keyVault.bicep' = {
  name: 'auditsync-keyvault'
  params: {
    name: keyVaultName
    location: location
    tags: tags
    keeperApiToken: keeperApiToken
    keeperApiTokenExpires: keeperApiTokenExpires
    deploymentTime: deploymentTime
    onePasswordApiToken: onePasswordApiToken
    storeWorkspaceKey: legacyMode
    workspaceResourceId: workspaceResourceId
    enableAuditLogs: enableKeyVaultAuditLogs
  }
}

module functionApp 'modules/functionApp.bicep' = {
  name: 'auditsync-functionapp'
  params: {
    name: functionAppName
    location: location
    tags: tags
    workspaceResourceId: workspaceResourceId
    workspaceCustomerId: workspace.properties.customerId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    checkpointTableName: storage.outputs.checkpointTableName
    keyVaultUri: keyVault.outputs.uri
    keeperTokenSecretName: keyVault.outputs.keeperTokenSecretName
    onePasswordTokenSecretName: keyVault.outputs.onePasswordTokenSecretName
    workspaceKeySecretName: keyVault.outputs.workspaceKeySecretName
    ingestionEndpoint: dcr.outputs.logsIngestionEndpoint
    dcrImmutableId: dcr.outputs.immutableId
    sinkMode: sinkMode
    sources: sources
    keeperBaseUrl: keeperBaseUrl
    onePasswordBaseUrl: onePasswordBaseUrl
    onePasswordEventTypes: onePasswordEventTypes
    timerSchedule: timerSchedule
    initialLookback: initialLookback
    tenantRegistry: tenantRegistry
    workQueueName: storage.outputs.workQueueName
    maximumInstanceCount: maximumInstanceCount
  }
}

module roles 'modules/roles.bicep' = {
  name: 'auditsync-roles'
  params: {
    principalId: functionApp.outputs.principalId
    functionAppId: functionApp.outputs.id
    dcrName: dcr.outputs.name
    keyVaultName: keyVault.outputs.name
    storageAccountName: storage.outputs.name
    appInsightsName: functionApp.outputs.appInsightsName
  }
}

// Last in line: OneDeploy writes the package with the app's identity, so it waits for the role
// assignments and for everything else (the longest time for the roles to propagate). A deployment of its
// own, so it can be re-run alone (output redeployCodeCommand; docs/deployment.md).
module codeDeployment 'modules/codeDeployment.bicep' = {
  name: 'auditsync-code'
  params: {
    functionAppName: functionApp.outputs.name
    packageUrl: packageUrl
  }
  dependsOn: [
    roles
    alerts
  ]
}

module alerts 'modules/alerts.bicep' = {
  name: 'auditsync-alerts'
  params: {
    namePrefix: namePrefix
    location: workspace.location
    tags: tags
    workspaceResourceId: workspaceResourceId
    lagThresholdMinutes: lagThresholdMinutes
    tokenExpiryWarningDays: tokenExpiryWarningDays
    alertEmail: alertEmail
    appInsightsName: functionApp.outputs.appInsightsName
    appInsightsLocation: location
  }
  dependsOn: [
    tables
  ]
}

module sentinelContent 'modules/sentinelContent.bicep' = if (deploySentinelContent) {
  name: 'auditsync-sentinel'
  scope: resourceGroup(workspaceSubscriptionId, workspaceResourceGroup)
  params: {
    workspaceName: workspaceName
    location: workspace.location
    onboardSentinel: onboardSentinel
    keyVaultName: keyVault.outputs.name
    functionAppPrincipalId: functionApp.outputs.principalId
  }
  dependsOn: [
    tables
  ]
}

output functionAppName string = functionApp.outputs.name
output dcrImmutableId string = dcr.outputs.immutableId
output logsIngestionEndpoint string = dcr.outputs.logsIngestionEndpoint
output keyVaultUri string = keyVault.outputs.uri
output redeployCodeCommand string = 'az deployment group create --resource-group ${resourceGroup().name} --name auditsync-code --template-uri ${codeTemplateUrl} --parameters functionAppName=${functionApp.outputs.name}'
