// One Azure AI Services account: Speech (STT, TTS) and Azure OpenAI (chat, realtime and transcription deployments) on
// one custom domain, reached only with Entra ID (keys disabled).
param location string
param tags object
param name string
@description('Chat model for the speech cascade.')
param chatModel object
@description('Speech-to-speech model for PIPELINE=realtime.')
param realtimeModel object
@description('Transcribes the caller in Realtime calls (AZURE_OPENAI_TRANSCRIPTION_DEPLOYMENT): on Azure the session names a deployment, not a model.')
param transcriptionModel object

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_134: no VNet in this template (Flex Consumption and Container Apps reach it over its public endpoint); keys are disabled, access is Entra ID + RBAC only; ACS also calls it for play/recognize
  name: name
  location: location
  tags: tags
  kind: 'AIServices'
  sku: { name: 'S0' }
  identity: { type: 'SystemAssigned' }
  properties: {
    customSubDomainName: name // Entra ID auth to Speech and OpenAI needs the custom domain
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow' }
  }
}

resource chat 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: chatModel.deploymentName
  sku: { name: chatModel.skuName, capacity: chatModel.capacity }
  properties: {
    model: { format: 'OpenAI', name: chatModel.name, version: chatModel.version }
    versionUpgradeOption: 'NoAutoUpgrade'
  }
}

resource realtime 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: realtimeModel.deploymentName
  sku: { name: realtimeModel.skuName, capacity: realtimeModel.capacity }
  properties: {
    model: { format: 'OpenAI', name: realtimeModel.name, version: realtimeModel.version }
    versionUpgradeOption: 'NoAutoUpgrade'
  }
  dependsOn: [ chat ] // deployments on one account are created one at a time
}

resource transcription 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: transcriptionModel.deploymentName
  sku: { name: transcriptionModel.skuName, capacity: transcriptionModel.capacity }
  properties: {
    model: { format: 'OpenAI', name: transcriptionModel.name, version: transcriptionModel.version }
    versionUpgradeOption: 'NoAutoUpgrade'
  }
  dependsOn: [ realtime ]
}

output name string = account.name
output speechEndpoint string = 'https://${name}.cognitiveservices.azure.com'
output openAiEndpoint string = 'https://${name}.openai.azure.com'
output chatDeployment string = chat.name
output realtimeDeployment string = realtime.name
output transcriptionDeployment string = transcription.name
