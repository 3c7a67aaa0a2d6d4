// The control plane: function_app.py on Flex Consumption (Python 3.11), with one always-ready instance
// for the function that answers calls (a cold start there is a ringing phone nobody picks up), and
// durableAlwaysReady for the durable group: Flex scales orchestrations and activities on their own instances
// (per-function scaling), so without one a call's first activity, or a hang-up raised to an idle call, can
// wait for a cold start. Microsoft's Flex Consumption Durable Functions sample (durable-functions-order-
// processing) recommends at least 1 (`az functionapp scale config always-ready set --settings durable=1`).
param location string
param tags object
param name string
param planName string
param storageAccountName string
param deploymentContainerUrl string
@secure()
param appInsightsConnectionString string
@description('Settings shared with the media host (name: value).')
param settings object
param signingSecretUri string
@description('Most instances Flex Consumption may scale to.')
@minValue(1)
param maximumInstanceCount int
@allowed([ 2048, 4096 ])
param instanceMemoryMB int
@description('Always-ready instances for the durable group (orchestrations and activities).')
@minValue(0)
param durableAlwaysReady int

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption places instances itself; zone redundancy is a region-dependent opt-in left to the operator
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Event Grid and ACS Call Automation deliver calls and callbacks from the internet; callbacks carry signed per-call tokens and ACS JWTs
  // checkov:skip=CKV_AZURE_17: ACS callbacks and Event Grid deliveries present no client certificate
  // checkov:skip=CKV_AZURE_212: Flex Consumption: always-ready instances for on_incoming_call and the durable group, more on demand; there is no plan-level instance minimum
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no App Service health check; /api/health serves monitoring probes
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'functions' })
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false // ACS callbacks and Event Grid do not present client certificates
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: [
          { name: 'function:on_incoming_call', instanceCount: 1 }
          { name: 'durable', instanceCount: durableAlwaysReady }
        ]
      }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_66: applies to App Service web config; this resource holds the Flex Consumption app settings
  // checkov:skip=CKV_AZURE_63: applies to App Service web config; this resource holds the Flex Consumption app settings
  // checkov:skip=CKV_AZURE_65: applies to App Service web config; this resource holds the Flex Consumption app settings
  // checkov:skip=CKV_AZURE_80: applies to App Service web config; this resource holds the Flex Consumption app settings (Python, no .NET)
  // checkov:skip=CKV_AZURE_13: App Service Authentication would reject ACS and Event Grid, which cannot sign in; every route checks its own token
  // checkov:skip=CKV_AZURE_88: applies to App Service web config; this resource holds the Flex Consumption app settings (Flex Consumption has no Azure Files content share)
  // checkov:skip=CKV_AZURE_222: Event Grid and ACS Call Automation deliver from the internet
  parent: site
  name: 'appsettings'
  properties: union(settings, {
    // The Functions host and Durable Functions reach storage with the app's identity (no keys).
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
    SIGNING_SECRET: '@Microsoft.KeyVault(SecretUri=${signingSecretUri})'
    CALLBACK_BASE_URL: 'https://${site.properties.defaultHostName}'
  })
}

output name string = site.name
output principalId string = site.identity.principalId
output hostName string = site.properties.defaultHostName
