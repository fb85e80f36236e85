// The Direct data collection rule: the code posts each table's stream to its logsIngestion endpoint.
// Stream declarations and transforms come from infra/tables.json (generated from auditsync/tables/*.json).
param name string

@description('Must be the workspace region.')
param location string

param workspaceResourceId string
param tags object

var content = loadJsonContent('../tables.json')

resource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: name
  location: location
  tags: tags
  kind: 'Direct'
  properties: {
    description: 'auditsync: Keeper and 1Password audit events and connector health'
    streamDeclarations: content.streamDeclarations
    destinations: {
      logAnalytics: [
        {
          name: 'workspace'
          workspaceResourceId: workspaceResourceId
        }
      ]
    }
    dataFlows: content.dataFlows
  }
}

output name string = dcr.name
output immutableId string = dcr.properties.immutableId
output logsIngestionEndpoint string = dcr.properties.endpoints.logsIngestion
