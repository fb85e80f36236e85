// Code deployment for Flex Consumption: OneDeploy fetches the package zip and builds its requirements
// remotely. Runs after the role assignments, because the app writes the package with its own identity.
param functionAppName string
param packageUrl string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource oneDeploy 'Microsoft.Web/sites/extensions@2024-04-01' = {
  parent: site
  name: 'onedeploy'
  properties: {
    packageUri: packageUrl
    remoteBuild: true
  }
}
