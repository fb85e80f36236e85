// The custom tables, in the workspace's resource group. Their schemas come from infra/tables.json, which
// tools/build_infra.py generates from auditsync/tables/*.json (tests keep the two equal).
@description('Name of the existing Log Analytics workspace.')
param workspaceName string

var content = loadJsonContent('../tables.json')

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

resource customTables 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = [for table in content.tables: {
  parent: workspace
  name: table.name
  properties: {
    plan: 'Analytics'
    schema: {
      name: table.name
      columns: table.columns
    }
  }
}]
