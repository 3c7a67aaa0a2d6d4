// Cosmos DB (NoSQL, serverless) for call records: one document per call, partitioned by call id, expiring
// after CALL_RECORD_TTL_DAYS. Keys are disabled; the Function App writes with data-plane RBAC.
param location string
param tags object
param name string
param databaseName string
param containerName string
@minValue(1)
param recordTtlDays int

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  // checkov:skip=CKV_AZURE_101: no VNet in this template (Flex Consumption and Container Apps reach it over its public endpoint); keys are disabled, access is Entra ID + RBAC only
  // checkov:skip=CKV_AZURE_99: no VNet in this template (Flex Consumption and Container Apps reach it over its public endpoint); keys are disabled, access is Entra ID + RBAC only
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [ { locationName: location, failoverPriority: 0, isZoneRedundant: false } ]
    capabilities: [ { name: 'EnableServerless' } ]
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    disableLocalAuth: true
    // The app cannot create or alter databases and containers: they are declared here only.
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    backupPolicy: { type: 'Continuous', continuousModeProperties: { tier: 'Continuous7Days' } }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: { resource: { id: databaseName } }
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: containerName
  properties: {
    resource: {
      id: containerName
      partitionKey: { paths: [ '/callId' ], kind: 'Hash', version: 2 }
      defaultTtl: recordTtlDays * 86400
    }
  }
}

output name string = account.name
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
output containerName string = container.name
