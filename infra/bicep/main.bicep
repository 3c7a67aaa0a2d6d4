// Switchboard on Azure: the Function App (control plane), the media host (Container Apps), ACS with its
// IncomingCall subscription, AI Services (Speech + Azure OpenAI), Cosmos DB, Redis, Key Vault and
// monitoring (optionally a Durable Task Scheduler), with managed identities everywhere. `azd up` deploys it;
// docs/deploy.md walks through it.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name: names the resource group and tags every resource.')
param environmentName string

@minLength(1)
@description('Region for everything except AI Services (see aiLocation).')
param location string

@description('Region for AI Services: it must offer the chat, realtime and transcription models.')
param aiLocation string = 'swedencentral'

@description('Where ACS keeps data at rest.')
param acsDataLocation string = 'United States'

@description('Comma-separated E.164 numbers this deployment answers (empty: every number on the ACS resource).')
param calledNumbers string = ''

@description('Create the Event Grid subscription for IncomingCall. It needs the deployed function, so the azd postdeploy hook turns it on.')
param subscribeIncomingCalls bool = false

@allowed([ 'cascade', 'realtime' ])
@description('PIPELINE: cascade (Speech STT, chat model, Speech TTS) or realtime (speech to speech).')
param pipeline string = 'cascade'

@description('DEFAULT_SCENARIO: the scenario for numbers no scenario lists.')
param defaultScenario string = 'banking'

@description('Chat model deployment (cascade pipeline). Capacity is in thousands of tokens per minute.')
param chatModel object = {
  deploymentName: 'chat'
  name: 'gpt-4o-mini'
  version: '2024-07-18'
  skuName: 'GlobalStandard'
  capacity: 100
}

@description('Realtime (speech-to-speech) model deployment (realtime pipeline).')
param realtimeModel object = {
  deploymentName: 'realtime'
  name: 'gpt-realtime'
  version: '2025-08-28'
  skuName: 'GlobalStandard'
  capacity: 10
}

@description('Caller transcription in Realtime calls: Azure takes this deployment\'s name where OpenAI takes a model name. gpt-4o-mini-transcribe 2025-03-20 is a Global Standard model (Azure OpenAI model availability).')
param transcriptionModel object = {
  deploymentName: 'transcribe'
  name: 'gpt-4o-mini-transcribe'
  version: '2025-03-20'
  skuName: 'GlobalStandard'
  capacity: 10
}

@description('Azure Managed Redis SKU.')
param redisSku string = 'Balanced_B0'

@description('Days call records are kept (CALL_RECORD_TTL_DAYS).')
@minValue(1)
param callRecordTtlDays int = 90

@description('Media host replicas always running (at least 1: calls cannot wait for a cold start).')
@minValue(1)
param mediaHostMinReplicas int = 1

@minValue(1)
param mediaHostMaxReplicas int = 10

@description('Concurrent calls per media host replica before Container Apps adds one.')
@minValue(1)
param mediaHostCallsPerReplica int = 40

@description('Calls one media host replica accepts at most (MEDIA_MAX_CALLS).')
@minValue(1)
param mediaHostMaxCallsPerReplica int = 60

@description('Seconds a stopping media host replica has to finish its calls.')
@minValue(30)
@maxValue(600)
param mediaHostTerminationGraceSeconds int = 600

param mediaHostCpu string = '1.0'
param mediaHostMemory string = '2Gi'

@description('Whether azd has deployed the media host image before (set by azd).')
param mediaHostExists bool = false

@minValue(1)
param functionMaxInstances int = 40

@description('Always-ready Function App instances for orchestrations and activities (the durable group scales apart from the HTTP and Event Grid functions on Flex Consumption): 0 lets a call wait for a cold start.')
@minValue(0)
param functionDurableAlwaysReady int = 1

@allowed([ 'azureStorage', 'durableTaskScheduler' ])
@description('Durable Functions backend: azureStorage (queues in the Function App storage account, polled with a back-off of at most 1 s) or durableTaskScheduler (a managed scheduler that pushes work items). docs/durable.md compares them.')
param durableBackend string = 'azureStorage'

@allowed([ 'Consumption', 'Dedicated' ])
@description('Durable Task Scheduler SKU (durableBackend durableTaskScheduler only).')
param durableTaskSchedulerSku string = 'Consumption'

@description('HMAC key for per-call tokens (the azd preprovision hook generates one).')
@secure()
@minLength(32)
param signingSecret string

@description('Bearer token AudioCodes VoiceAI Connect presents on /ws (the azd preprovision hook generates one).')
@secure()
@minLength(32)
param audiocodesBotToken string

@description('Object id of a developer to grant data access for local runs (empty: none).')
param developerPrincipalId string = ''

@description('LOG_LEVEL for both apps.')
param logLevel string = 'INFO'

var tags = { 'azd-env-name': environmentName, application: 'switchboard' }
var token = toLower(uniqueString(subscription().id, environmentName, location))
var names = {
  resourceGroup: 'rg-${environmentName}'
  logAnalytics: 'log-${token}'
  appInsights: 'appi-${token}'
  keyVault: 'kv-${token}'
  storage: 'st${token}'
  acs: 'acs-${token}'
  systemTopic: 'evgt-acs-${token}'
  ai: 'ai-${token}'
  cosmos: 'cosmos-${token}'
  redis: 'redis-${token}'
  registry: 'cr${token}'
  containerEnv: 'cae-${token}'
  mediaHost: 'ca-media-${token}'
  mediaIdentity: 'id-media-${token}'
  functionPlan: 'plan-${token}'
  functionApp: 'func-${token}'
  durableScheduler: 'dts-${token}'
}
var durableTaskHub = 'SwitchboardHub' // host.json extensions.durableTask.hubName (tests/infra checks they match)
var useDurableTaskScheduler = durableBackend == 'durableTaskScheduler'
var cosmosDatabase = 'switchboard'
var cosmosContainer = 'calls'
var numbers = empty(calledNumbers) ? [] : split(replace(calledNumbers, ' ', ''), ',')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
  }
}

module mediaIdentity 'modules/identity.bicep' = {
  name: 'media-identity'
  scope: rg
  params: { location: location, tags: tags, name: names.mediaIdentity }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    name: names.keyVault
    signingSecret: signingSecret
    audiocodesBotToken: audiocodesBotToken
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: { location: location, tags: tags, name: names.storage }
}

module communication 'modules/communication.bicep' = {
  name: 'communication'
  scope: rg
  params: {
    tags: tags
    name: names.acs
    systemTopicName: names.systemTopic
    dataLocation: acsDataLocation
  }
}

module ai 'modules/ai.bicep' = {
  name: 'ai'
  scope: rg
  params: {
    location: aiLocation
    tags: tags
    name: names.ai
    chatModel: chatModel
    realtimeModel: realtimeModel
    transcriptionModel: transcriptionModel
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    location: location
    tags: tags
    name: names.cosmos
    databaseName: cosmosDatabase
    containerName: cosmosContainer
    recordTtlDays: callRecordTtlDays
  }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  scope: rg
  params: { location: location, tags: tags, name: names.redis, skuName: redisSku }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: { location: location, tags: tags, name: names.registry }
}

module durableScheduler 'modules/durable-task-scheduler.bicep' = if (useDurableTaskScheduler) {
  name: 'durable-task-scheduler'
  scope: rg
  params: {
    location: location
    tags: tags
    name: names.durableScheduler
    taskHubName: durableTaskHub
    skuName: durableTaskSchedulerSku
  }
}

module containerEnv 'modules/container-apps-env.bicep' = {
  name: 'container-apps-env'
  scope: rg
  params: {
    location: location
    tags: tags
    name: names.containerEnv
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
  }
}

// What both runtimes read (switchboard/settings.py). Secrets are not here: each app takes
// SIGNING_SECRET (and the media host AUDIOCODES_BOT_TOKEN) from Key Vault.
var mediaHostFqdn = '${names.mediaHost}.${containerEnv.outputs.defaultDomain}'
var sharedSettings = {
  LOG_LEVEL: logLevel
  LOG_FORMAT: 'json'
  REDIS_URL: redis.outputs.url
  REDIS_USE_ENTRA_ID: 'true'
  ACS_ENDPOINT: communication.outputs.endpoint
  ACS_RESOURCE_ID: communication.outputs.immutableResourceId
  MEDIA_HOST_PUBLIC_URL: 'wss://${mediaHostFqdn}'
  SPEECH_ENDPOINT: ai.outputs.speechEndpoint
  AZURE_OPENAI_ENDPOINT: ai.outputs.openAiEndpoint
  AZURE_OPENAI_CHAT_DEPLOYMENT: ai.outputs.chatDeployment
  AZURE_OPENAI_REALTIME_DEPLOYMENT: ai.outputs.realtimeDeployment
  AZURE_OPENAI_TRANSCRIPTION_DEPLOYMENT: ai.outputs.transcriptionDeployment
  PIPELINE: pipeline
  DEFAULT_SCENARIO: defaultScenario
  STT_ENGINE: 'azure'
  TTS_ENGINE: 'azure'
  CHAT_ENGINE: 'azure_openai'
}
// host.json selects the Azure Storage backend. With the Durable Task Scheduler these settings override it
// (AzureFunctionsJobHost__<path>: "Override host.json values" in the Functions host.json reference), so one
// host.json serves both. The connection string is the scheduler's documented form for a system-assigned
// identity ("Configure managed identity for Durable Task Scheduler"); the scheduler has no extended sessions.
var durableSettings = useDurableTaskScheduler ? {
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: 'azureManaged'
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
  AzureFunctionsJobHost__extensions__durableTask__extendedSessionsEnabled: 'false'
  DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${durableScheduler.outputs.endpoint};Authentication=ManagedIdentity'
} : {}
var functionSettings = union(sharedSettings, {
  COSMOS_ENDPOINT: cosmos.outputs.endpoint
  COSMOS_DATABASE: cosmos.outputs.databaseName
  COSMOS_CONTAINER: cosmos.outputs.containerName
  CALL_RECORD_TTL_DAYS: string(callRecordTtlDays)
}, durableSettings)

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    location: location
    tags: tags
    name: names.functionApp
    planName: names.functionPlan
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    settings: functionSettings
    signingSecretUri: keyVault.outputs.signingSecretUri
    maximumInstanceCount: functionMaxInstances
    instanceMemoryMB: 2048
    durableAlwaysReady: functionDurableAlwaysReady
  }
}

module access 'modules/access.bicep' = {
  name: 'access'
  scope: rg
  params: {
    functionPrincipalId: functionApp.outputs.principalId
    mediaHostPrincipalId: mediaIdentity.outputs.principalId
    acsPrincipalId: communication.outputs.principalId
    developerPrincipalId: developerPrincipalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    signingSecretName: keyVault.outputs.signingSecretName
    audiocodesBotTokenName: keyVault.outputs.audiocodesBotTokenName
    acsName: communication.outputs.name
    aiAccountName: ai.outputs.name
    cosmosAccountName: cosmos.outputs.name
    redisName: redis.outputs.name
    registryName: registry.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    durableTaskSchedulerName: names.durableScheduler
    useDurableTaskScheduler: useDurableTaskScheduler
  }
  dependsOn: [ durableScheduler ] // its role is assigned on the scheduler (when there is one)
}

module mediaHost 'modules/media-host.bicep' = {
  name: 'media-host'
  scope: rg
  params: {
    location: location
    tags: tags
    name: names.mediaHost
    environmentId: containerEnv.outputs.id
    identityId: mediaIdentity.outputs.id
    identityClientId: mediaIdentity.outputs.clientId
    registryLoginServer: registry.outputs.loginServer
    exists: mediaHostExists
    settings: union(sharedSettings, { CALLBACK_BASE_URL: 'https://${functionApp.outputs.hostName}' })
    signingSecretUri: keyVault.outputs.signingSecretUri
    audiocodesBotTokenUri: keyVault.outputs.audiocodesBotTokenUri
    minReplicas: mediaHostMinReplicas
    maxReplicas: mediaHostMaxReplicas
    callsPerReplica: mediaHostCallsPerReplica
    maxCallsPerReplica: mediaHostMaxCallsPerReplica
    terminationGracePeriodSeconds: mediaHostTerminationGraceSeconds
    cpu: mediaHostCpu
    memory: mediaHostMemory
  }
  dependsOn: [ access ] // its image pull and Key Vault references need the roles first
}

module incomingCall 'modules/incoming-call.bicep' = if (subscribeIncomingCalls) {
  name: 'incoming-call'
  scope: rg
  params: {
    systemTopicName: communication.outputs.systemTopicName
    functionAppName: functionApp.outputs.name
    calledNumbers: numbers
  }
  dependsOn: [ access ]
}

// azd stores these in the environment (.azure/<env>/.env); docs/deploy.md refers to them by name.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output ACS_NAME string = communication.outputs.name
output ACS_ENDPOINT string = communication.outputs.endpoint
output ACS_SYSTEM_TOPIC_NAME string = communication.outputs.systemTopicName
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.hostName}'
output MEDIA_HOST_URL string = 'https://${mediaHost.outputs.fqdn}'
output AUDIOCODES_BOT_URL string = 'wss://${mediaHost.outputs.fqdn}/ws'
output INCOMING_CALLS_SUBSCRIBED bool = subscribeIncomingCalls
