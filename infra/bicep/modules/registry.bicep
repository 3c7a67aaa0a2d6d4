// The container registry azd pushes the media host image to; pulled with the media host's identity.
param location string
param tags object
param name string

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_139: private registry access needs the Premium SKU and a VNet; pulls use the media host identity (AcrPull), admin user and anonymous pull are off
  // checkov:skip=CKV_AZURE_166: quarantine needs the Premium SKU; images come only from `azd deploy` of this repository
  // checkov:skip=CKV_AZURE_163: image scanning is Microsoft Defender for Containers, enabled per subscription, not per registry
  name: name
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

output name string = registry.name
output loginServer string = registry.properties.loginServer
