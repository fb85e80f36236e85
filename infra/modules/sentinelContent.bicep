// The auditsync Sentinel solution, packaged as Content Hub packages one (sentinel/build/content.json, built
// by tools/build_sentinel.py): one content package (kind Solution, with its version and dependencies) and a
// content template, with its metadata, for every analytics rule, hunting query, parser, the workbook and the
// connector. Analytics rules and the workbook are templates only: no template here creates an active rule
// or a workbook, so a redeployment never touches what the SOC turned on, off or tuned (rules are created
// from the templates in Analytics > Rule templates, or by `python -m auditsync sentinel enable`). Parsers,
// hunting queries and the connector page are passive and are also installed live, as solutions install them.
// Everything here needs Sentinel on the workspace: either it is enabled already or onboardSentinel enables it.
param workspaceName string
param location string
param onboardSentinel bool

@description('Name of the vault holding the API tokens (the AuditSyncKeyVaultAudit parser reads its audit log).')
param keyVaultName string

@description('Object id of the Function App\'s managed identity: the one identity expected to read the tokens.')
param functionAppPrincipalId string

var content = loadJsonContent('../../sentinel/build/content.json')
var solution = content.solution
var templateSchema = 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#'
var metadataType = 'Microsoft.OperationalInsights/workspaces/providers/metadata'
var siApiVersion = '2024-03-01'
var packaging = {
  packageId: solution.id
  packageKind: 'Solution'
  packageName: solution.name
  packageVersion: solution.version
  contentSchemaVersion: solution.contentSchemaVersion
  source: solution.source
  author: solution.author
  support: solution.support
}
var workbookName = guid(workspace.id, 'auditsync-workbook')

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

resource onboarding 'Microsoft.SecurityInsights/onboardingStates@2024-03-01' = if (onboardSentinel) {
  scope: workspace
  name: 'default'
  properties: {}
}

resource solutionPackage 'Microsoft.SecurityInsights/contentPackages@2024-03-01' = {
  scope: workspace
  name: solution.id
  properties: {
    contentId: solution.id
    contentProductId: solution.contentProductId
    contentKind: 'Solution'
    contentSchemaVersion: solution.contentSchemaVersion
    displayName: solution.name
    version: solution.version
    publisherDisplayName: solution.publisher
    description: solution.description
    source: solution.source
    author: solution.author
    support: solution.support
    dependencies: solution.dependencies
    categories: solution.categories
    providers: solution.providers
    firstPublishDate: solution.firstPublishDate
    lastPublishDate: solution.lastPublishDate
  }
  dependsOn: [
    onboarding
  ]
}

// -- parsers: live saved searches (rules and hunting queries call them) and their templates ---------------

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

resource parserMetadata 'Microsoft.SecurityInsights/metadata@2024-03-01' = [for (parser, i) in content.parsers: {
  scope: workspace
  name: 'Parser-${parser.name}'
  properties: {
    parentId: parsers[i].id
    contentId: parser.contentId
    kind: 'Parser'
    version: parser.version
    source: solution.source
    author: solution.author
    support: solution.support
  }
  dependsOn: [
    solutionPackage
  ]
}]

resource parserTemplates 'Microsoft.SecurityInsights/contentTemplates@2024-03-01' = [for parser in content.parsers: {
  scope: workspace
  name: parser.templateName
  properties: union(packaging, {
    contentId: parser.contentId
    contentProductId: parser.contentProductId
    contentKind: 'Parser'
    displayName: parser.displayName
    version: parser.version
    mainTemplate: {
      '$schema': templateSchema
      contentVersion: parser.version
      parameters: {}
      variables: {}
      resources: [
        {
          type: 'Microsoft.OperationalInsights/workspaces/savedSearches'
          apiVersion: '2020-08-01'
          name: '${workspaceName}/${parser.name}'
          properties: {
            category: parser.category
            displayName: parser.displayName
            query: replace(replace(parser.query, '__AUDITSYNC_KEY_VAULT_NAME__', keyVaultName), '__AUDITSYNC_FUNCTION_APP_PRINCIPAL_ID__', functionAppPrincipalId)
            functionAlias: parser.name
            version: 2
          }
        }
        {
          type: metadataType
          apiVersion: siApiVersion
          name: '${workspaceName}/Microsoft.SecurityInsights/Parser-${parser.name}'
          properties: {
            parentId: resourceId('Microsoft.OperationalInsights/workspaces/savedSearches', workspaceName, parser.name)
            contentId: parser.contentId
            kind: 'Parser'
            version: parser.version
            source: solution.source
            author: solution.author
            support: solution.support
          }
        }
      ]
    }
  })
  dependsOn: [
    solutionPackage
  ]
}]

// -- hunting queries: live saved searches (they never fire) and their templates ------------------------------

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

resource huntingMetadata 'Microsoft.SecurityInsights/metadata@2024-03-01' = [for (hunting, i) in content.huntingQueries: {
  scope: workspace
  name: 'HuntingQuery-${hunting.name}'
  properties: {
    parentId: huntingQueries[i].id
    contentId: hunting.contentId
    kind: 'HuntingQuery'
    version: hunting.version
    source: solution.source
    author: solution.author
    support: solution.support
  }
  dependsOn: [
    solutionPackage
  ]
}]

resource huntingTemplates 'Microsoft.SecurityInsights/contentTemplates@2024-03-01' = [for hunting in content.huntingQueries: {
  scope: workspace
  name: hunting.templateName
  properties: union(packaging, {
    contentId: hunting.contentId
    contentProductId: hunting.contentProductId
    contentKind: 'HuntingQuery'
    displayName: hunting.displayName
    version: hunting.version
    mainTemplate: {
      '$schema': templateSchema
      contentVersion: hunting.version
      parameters: {}
      variables: {}
      resources: [
        {
          type: 'Microsoft.OperationalInsights/workspaces/savedSearches'
          apiVersion: '2020-08-01'
          name: '${workspaceName}/${hunting.name}'
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
        }
        {
          type: metadataType
          apiVersion: siApiVersion
          name: '${workspaceName}/Microsoft.SecurityInsights/HuntingQuery-${hunting.name}'
          properties: {
            parentId: resourceId('Microsoft.OperationalInsights/workspaces/savedSearches', workspaceName, hunting.name)
            contentId: hunting.contentId
            kind: 'HuntingQuery'
            version: hunting.version
            source: solution.source
            author: solution.author
            support: solution.support
          }
        }
      ]
    }
  })
  dependsOn: [
    solutionPackage
  ]
}]

// -- analytics rules: templates only (AlertRuleTemplate); a rule exists only once someone creates it ----------

resource ruleTemplates 'Microsoft.SecurityInsights/contentTemplates@2024-03-01' = [for rule in content.alertRules: {
  scope: workspace
  name: rule.templateName
  properties: union(packaging, {
    contentId: rule.contentId
    contentProductId: rule.contentProductId
    contentKind: 'AnalyticsRule'
    displayName: rule.properties.displayName
    version: rule.version
    mainTemplate: {
      '$schema': templateSchema
      contentVersion: rule.version
      parameters: {}
      variables: {}
      resources: [
        {
          type: 'Microsoft.SecurityInsights/AlertRuleTemplates'
          apiVersion: siApiVersion
          name: rule.id
          kind: rule.kind
          properties: rule.properties
        }
        {
          type: metadataType
          apiVersion: siApiVersion
          name: '${workspaceName}/Microsoft.SecurityInsights/AnalyticsRule-${rule.id}'
          properties: {
            parentId: resourceId('Microsoft.SecurityInsights/AlertRuleTemplates', rule.id)
            contentId: rule.contentId
            kind: 'AnalyticsRule'
            version: rule.version
            source: solution.source
            author: solution.author
            support: solution.support
          }
        }
      ]
    }
  })
  dependsOn: [
    solutionPackage
  ]
}]

// -- the workbook: a template (Workbooks > Templates > Save creates the user's own copy) -------------------

resource workbookTemplate 'Microsoft.SecurityInsights/contentTemplates@2024-03-01' = {
  scope: workspace
  name: content.workbook.templateName
  properties: union(packaging, {
    contentId: content.workbook.contentId
    contentProductId: content.workbook.contentProductId
    contentKind: 'Workbook'
    displayName: content.workbook.displayName
    version: content.workbook.version
    mainTemplate: {
      '$schema': templateSchema
      contentVersion: content.workbook.version
      parameters: {}
      variables: {}
      resources: [
        {
          type: 'Microsoft.Insights/workbooks'
          apiVersion: '2023-06-01'
          name: workbookName
          location: location
          kind: 'shared'
          properties: {
            displayName: content.workbook.displayName
            serializedData: content.workbook.serializedData
            sourceId: workspace.id
            category: 'sentinel'
          }
        }
        {
          type: metadataType
          apiVersion: siApiVersion
          name: '${workspaceName}/Microsoft.SecurityInsights/Workbook-${workbookName}'
          properties: {
            parentId: resourceId('Microsoft.Insights/workbooks', workbookName)
            contentId: content.workbook.contentId
            kind: 'Workbook'
            version: content.workbook.version
            source: solution.source
            author: solution.author
            support: solution.support
          }
        }
      ]
    }
  })
  dependsOn: [
    solutionPackage
  ]
}

// -- the connector page: a connector definition (kind Customizable), live and as a template ----------------

resource connector 'Microsoft.SecurityInsights/dataConnectorDefinitions@2024-03-01' = {
  scope: workspace
  name: content.dataConnector.id
  kind: 'Customizable'
  properties: {
    connectorUiConfig: content.dataConnector.connectorUiConfig
  }
  dependsOn: [
    onboarding
  ]
}

resource connectorMetadata 'Microsoft.SecurityInsights/metadata@2024-03-01' = {
  scope: workspace
  name: 'DataConnector-${content.dataConnector.id}'
  properties: {
    parentId: connector.id
    contentId: content.dataConnector.contentId
    kind: 'DataConnector'
    version: content.dataConnector.version
    source: solution.source
    author: solution.author
    support: solution.support
  }
  dependsOn: [
    solutionPackage
  ]
}

resource connectorTemplate 'Microsoft.SecurityInsights/contentTemplates@2024-03-01' = {
  scope: workspace
  name: content.dataConnector.templateName
  properties: union(packaging, {
    contentId: content.dataConnector.contentId
    contentProductId: content.dataConnector.contentProductId
    contentKind: 'DataConnector'
    displayName: content.dataConnector.connectorUiConfig.title
    version: content.dataConnector.version
    mainTemplate: {
      '$schema': templateSchema
      contentVersion: content.dataConnector.version
      parameters: {}
      variables: {}
      resources: [
        {
          type: 'Microsoft.OperationalInsights/workspaces/providers/dataConnectorDefinitions'
          apiVersion: siApiVersion
          name: '${workspaceName}/Microsoft.SecurityInsights/${content.dataConnector.id}'
          kind: 'Customizable'
          properties: {
            connectorUiConfig: content.dataConnector.connectorUiConfig
          }
        }
        {
          type: metadataType
          apiVersion: siApiVersion
          name: '${workspaceName}/Microsoft.SecurityInsights/DataConnector-${content.dataConnector.id}'
          properties: {
            parentId: extensionResourceId(workspace.id, 'Microsoft.SecurityInsights/dataConnectorDefinitions', content.dataConnector.id)
            contentId: content.dataConnector.contentId
            kind: 'DataConnector'
            version: content.dataConnector.version
            source: solution.source
            author: solution.author
            support: solution.support
          }
        }
      ]
    }
  })
  dependsOn: [
    solutionPackage
  ]
}
