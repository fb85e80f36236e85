// Sentinel content built by the sentinel/ tooling (sentinel/build/content.json): parser functions,
// hunting queries, analytics rules, the workbook and the data connector card. Deployed into the
// workspace's resource group. Alert rules and the connector card need Sentinel on the workspace: either
// it is enabled already or onboardSentinel enables it first.
param workspaceName string
param location string
param onboardSentinel bool

@description('Name of the vault holding the API tokens (the AuditSyncKeyVaultAudit parser reads its audit log).')
param keyVaultName string

@description('Object id of the Function App\'s managed identity: the one identity expected to read the tokens.')
param functionAppPrincipalId string

var content = loadJsonContent('../../sentinel/build/content.json')

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

resource onboarding 'Microsoft.SecurityInsights/onboardingStates@2024-03-01' = if (onboardSentinel) {
  scope: workspace
  name: 'default'
  properties: {}
}

// One at a time, in file order: later parsers (ASIM) call earlier ones (KeeperEvents, OnePasswordEvents).
@batchSize(1)
resource parsers 'Microsoft.OperationalInsights/workspaces/savedSearches@2020-08-01' = [for parser in content.parsers: {
  parent: workspace
  name: parser.name
  properties: {
    category: parser.category
    displayName: parser.displayName
    query: replace(replace(parser.query, '__AUDITSYNC_KEY_VAULT_NAME__', keyVaultName), '__AUDITSYNC_FUNCTION_APP_PRINCIPAL_ID__', functionAppPrincipalId)
    functionAlias: parser.name
    version: 2
  }
}]

// Tags hold comma-separated tactics and techniques, as Sentinel's hunting page reads them. The
// string()/replace() chain stands in for join(), which pycep-parser (checkov's parser) cannot read.
resource huntingQueries 'Microsoft.OperationalInsights/workspaces/savedSearches@2020-08-01' = [for hunting in content.huntingQueries: {
  parent: workspace
  name: hunting.name
  properties: {
    category: 'Hunting Queries'
    displayName: hunting.displayName
    query: hunting.query
    version: 2
    tags: [
      {
        name: 'description'
        value: hunting.description
      }
      {
        name: 'tactics'
        value: replace(replace(replace(string(hunting.tactics), '["', ''), '"]', ''), '","', ',')
      }
      {
        name: 'techniques'
        value: replace(replace(replace(string(hunting.techniques), '["', ''), '"]', ''), '","', ',')
      }
    ]
  }
  dependsOn: [
    parsers
  ]
}]

resource analyticsRules 'Microsoft.SecurityInsights/alertRules@2024-03-01' = [for rule in content.alertRules: {
  scope: workspace
  name: rule.id
  kind: rule.kind
  properties: rule.properties
  dependsOn: [
    onboarding
    parsers
  ]
}]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = if (!empty(content.workbook.serializedData)) {
  name: guid(workspace.id, 'auditsync-workbook')
  location: location
  kind: 'shared'
  properties: {
    displayName: content.workbook.displayName
    serializedData: content.workbook.serializedData
    sourceId: workspace.id
    category: 'sentinel'
  }
  dependsOn: [
    parsers
  ]
}

resource dataConnector 'Microsoft.OperationalInsights/workspaces/providers/dataConnectors@2021-03-01-preview' = if (!empty(content.dataConnector.connectorUiConfig)) {
  name: '${workspaceName}/Microsoft.SecurityInsights/${guid(workspace.id, 'auditsync-connector')}'
  kind: 'GenericUI'
  properties: {
    connectorUiConfig: content.dataConnector.connectorUiConfig
  }
  dependsOn: [
    onboarding
  ]
}
