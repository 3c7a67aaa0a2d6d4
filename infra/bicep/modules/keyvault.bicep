// Key Vault for the two secrets no identity can replace: the per-call token signing key (both apps) and
// the bearer token AudioCodes VoiceAI Connect presents (media host).
param location string
param tags object
param name string
@secure()
@minLength(32)
@description('HMAC key for per-call tokens (SIGNING_SECRET).')
param signingSecret string
@secure()
@minLength(32)
@description('Bearer token AudioCodes VoiceAI Connect sends (AUDIOCODES_BOT_TOKEN).')
param audiocodesBotToken string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: no VNet in this template (Flex Consumption and Container Apps reach it over its public endpoint); keys are disabled, access is Entra ID + RBAC only
  // checkov:skip=CKV_AZURE_189: no VNet in this template (Flex Consumption and Container Apps reach it over its public endpoint); keys are disabled, access is Entra ID + RBAC only
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true // access is granted per secret, per identity (see access.bicep)
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled' // the Function App (Flex, no VNet here) and the media host read it
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource signing 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: rotated by redeploying with a new value; an expiry date would silently stop every call on that day
  parent: vault
  name: 'signing-secret'
  properties: {
    value: signingSecret
    contentType: 'text/plain'
    attributes: { enabled: true }
  }
}

resource audiocodes 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: rotated together with the VoiceAI Connect bot configuration; an expiry would cut AudioCodes calls off
  parent: vault
  name: 'audiocodes-bot-token'
  properties: {
    value: audiocodesBotToken
    contentType: 'text/plain'
    attributes: { enabled: true }
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output signingSecretName string = signing.name
output signingSecretUri string = '${vault.properties.vaultUri}secrets/${signing.name}'
output audiocodesBotTokenName string = audiocodes.name
output audiocodesBotTokenUri string = '${vault.properties.vaultUri}secrets/${audiocodes.name}'
