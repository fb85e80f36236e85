// Code deployment for Flex Consumption: OneDeploy fetches the self-contained package zip (dependencies under
// .python_packages, built by tools/package.py) into the deployment container with the app's identity, so
// it runs after the role assignments. Nothing is built on the platform (remoteBuild: false).
param functionAppName string

@description('URL of the function package zip; the default (written by tools/build_infra.py) is this release\'s asset.')
param packageUrl string = 'https://github.com/auditsync/auditsync/releases/download/v0.1.0/auditsync-0.1.0.zip'

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource oneDeploy 'Microsoft.Web/sites/extensions@2024-04-01' = {
  parent: site
  name: 'onedeploy'
  properties: {
    packageUri: packageUrl
    remoteBuild: false
  }
}
