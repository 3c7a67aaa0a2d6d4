// The Function App's storage: the Functions host and Durable Functions (blobs, queues, tables) and the
// Flex Consumption deployment package. Reached only with the app's identity: shared keys are off.
param location string
param tags object
param name string
@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string = 'app-package'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: no VNet in this template (Flex Consumption and Container Apps reach it over its public endpoint); keys are disabled, access is Entra ID + RBAC only
  // checkov:skip=CKV_AZURE_59: no VNet in this template (Flex Consumption and Container Apps reach it over its public endpoint); keys are disabled, access is Entra ID + RBAC only
  // checkov:skip=CKV_AZURE_206: LRS on purpose: it holds host state and the deployment package, nothing a zone loss would lose for good
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled' // Flex Consumption without a VNet reaches storage over its public endpoint
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
