// Every role assignment, least privilege, each scoped to the one resource it is for. Identities:
// the Function App's system identity, the media host's user-assigned identity, ACS's system identity,
// and optionally a developer (for `func start` against these resources and the Durable Task Scheduler
// dashboard).
param functionPrincipalId string
param mediaHostPrincipalId string
param acsPrincipalId string
@description('Object id of a developer to grant the same data access (empty: none).')
param developerPrincipalId string = ''
param storageAccountName string
param keyVaultName string
param signingSecretName string
param audiocodesBotTokenName string
param acsName string
param aiAccountName string
param cosmosAccountName string
param redisName string
param registryName string
param appInsightsName string
@description('Durable Task Scheduler name (used only with useDurableTaskScheduler).')
param durableTaskSchedulerName string
@description('The Function App uses the Durable Task Scheduler backend: grant it, and the developer, its data role.')
param useDurableTaskScheduler bool

// Built-in role definition ids (stable across tenants).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  // ACS honours no custom roles; this is the narrowest built-in one that allows Call Automation.
  communicationServiceOwner: '09976791-48a7-449e-bb21-39d1a415f350'
  speechUser: 'f2dc8367-1007-4938-bd23-fe263f013447'
  openAiUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
  cognitiveServicesUser: 'a97b65f3-24c7-4388-baec-2e87135dc908'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  // "Most Durable Functions apps require the Durable Task Data Contributor role" (Durable Task Scheduler
  // identity docs); id as in Azure-Samples/Durable-Task-Scheduler (pdf-summarizer/infra/main.bicep).
  durableTaskDataContributor: '0ad04412-c4d5-4796-b79c-f76d14c8d402'
}
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002' // Cosmos DB Built-in Data Contributor
var withDeveloper = !empty(developerPrincipalId)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: storageAccountName }
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = { name: keyVaultName }
resource signingSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: signingSecretName
}
resource audiocodesSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: audiocodesBotTokenName
}
resource acs 'Microsoft.Communication/communicationServices@2023-04-01' existing = { name: acsName }
resource ai 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = { name: aiAccountName }
resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = { name: cosmosAccountName }
resource redis 'Microsoft.Cache/redisEnterprise@2025-04-01' existing = { name: redisName }
resource redisDatabase 'Microsoft.Cache/redisEnterprise/databases@2025-04-01' existing = {
  parent: redis
  name: 'default'
}
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = { name: registryName }
resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = { name: appInsightsName }
resource durableScheduler 'Microsoft.DurableTask/schedulers@2025-11-01' existing = if (useDurableTaskScheduler) {
  name: durableTaskSchedulerName
}

// Who gets which role, on which resource. Everything is a service principal except the developer.
var service = 'ServicePrincipal'
var developer = withDeveloper ? [ developerPrincipalId ] : []
var storageGrants = [
  { principalId: functionPrincipalId, role: roles.storageBlobDataOwner, type: service } // host, deployment package
  { principalId: functionPrincipalId, role: roles.storageQueueDataContributor, type: service } // Durable Functions
  { principalId: functionPrincipalId, role: roles.storageTableDataContributor, type: service } // Durable history
]
var functionAcsGrant = { principalId: functionPrincipalId, role: roles.communicationServiceOwner, type: service } // answer, transfer, hang up
var developerAcsGrants = [for id in developer: { principalId: id, role: roles.communicationServiceOwner, type: 'User' }]
var acsGrants = concat([ functionAcsGrant ], developerAcsGrants)
var serviceAiGrants = [
  { principalId: mediaHostPrincipalId, role: roles.speechUser, type: service } // STT and TTS
  { principalId: mediaHostPrincipalId, role: roles.openAiUser, type: service } // chat and realtime
  { principalId: acsPrincipalId, role: roles.cognitiveServicesUser, type: service } // Call Automation play/recognize
]
var developerSpeechGrants = [for id in developer: { principalId: id, role: roles.speechUser, type: 'User' }]
var developerOpenAiGrants = [for id in developer: { principalId: id, role: roles.openAiUser, type: 'User' }]
var aiGrants = concat(serviceAiGrants, developerSpeechGrants, developerOpenAiGrants)
var signingReaders = [ functionPrincipalId, mediaHostPrincipalId ]
var developerDurableGrants = [for id in developer: { principalId: id, type: 'User' }] // its dashboard
var durableGrants = useDurableTaskScheduler ? concat([ { principalId: functionPrincipalId, type: service } ], developerDurableGrants) : []
var cosmosWriters = concat([ functionPrincipalId ], developer)

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in storageGrants: {
  scope: storage
  name: guid(storage.id, grant.principalId, grant.role)
  properties: {
    principalId: grant.principalId
    principalType: grant.type
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
  }
}]

resource acsRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in acsGrants: {
  scope: acs
  name: guid(acs.id, grant.principalId, grant.role)
  properties: {
    principalId: grant.principalId
    principalType: grant.type
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
  }
}]

resource aiRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in aiGrants: {
  scope: ai
  name: guid(ai.id, grant.principalId, grant.role)
  properties: {
    principalId: grant.principalId
    principalType: grant.type
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
  }
}]

// Telemetry with Entra auth: Application Insights' local (key) auth is off.
resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: appInsights
  name: guid(appInsights.id, functionPrincipalId, roles.monitoringMetricsPublisher)
  properties: {
    principalId: functionPrincipalId
    principalType: service
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource pullRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: registry
  name: guid(registry.id, mediaHostPrincipalId, roles.acrPull)
  properties: {
    principalId: mediaHostPrincipalId
    principalType: service
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
  }
}

// Durable Task Scheduler data plane: orchestrations, activities and the client API of the Function App.
resource durableRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in durableGrants: {
  scope: durableScheduler
  name: guid(durableScheduler.id, grant.principalId, roles.durableTaskDataContributor)
  properties: {
    principalId: grant.principalId
    principalType: grant.type
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.durableTaskDataContributor)
  }
}]

// Secrets: each identity reads only the secrets it needs, not the whole vault.
resource signingRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in signingReaders: {
  scope: signingSecret
  name: guid(signingSecret.id, principalId, roles.keyVaultSecretsUser)
  properties: {
    principalId: principalId
    principalType: service
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}]

resource audiocodesRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: audiocodesSecret
  name: guid(audiocodesSecret.id, mediaHostPrincipalId, roles.keyVaultSecretsUser)
  properties: {
    principalId: mediaHostPrincipalId
    principalType: service
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// Cosmos DB data plane: the Function App writes call records (a developer may read and write them).
resource cosmosRoles 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [for principalId in cosmosWriters: {
  parent: cosmos
  name: guid(cosmos.id, principalId, cosmosDataContributor)
  properties: {
    principalId: principalId
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    scope: cosmos.id
  }
}]

// Redis data plane (Entra ID): both runtimes share call sessions. Assignments on one database are
// applied one at a time, hence batchSize(1).
var serviceRedisUsers = [
  { name: 'functions', objectId: functionPrincipalId }
  { name: 'mediahost', objectId: mediaHostPrincipalId }
]
var developerRedisUsers = [for id in developer: { name: 'developer', objectId: id }]
var redisUsers = concat(serviceRedisUsers, developerRedisUsers)
@batchSize(1)
resource redisAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-04-01' = [for user in redisUsers: {
  parent: redisDatabase
  name: user.name
  properties: {
    accessPolicyName: 'default'
    user: { objectId: user.objectId }
  }
}]
