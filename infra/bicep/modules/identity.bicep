// The media host's user-assigned identity. User-assigned because the container app needs it before it
// exists: its image pull and its Key Vault secret references are checked when the app is created.
param location string
param tags object
param name string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
