// Azure Managed Redis for call sessions: TLS only, access keys disabled, Entra ID (access policy
// assignments for the app identities are in access.bicep).
param location string
param tags object
param name string
@description('Azure Managed Redis SKU, e.g. Balanced_B0 (smallest), Balanced_B1.')
param skuName string

resource cluster 'Microsoft.Cache/redisEnterprise@2025-04-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: skuName }
  properties: {
    minimumTlsVersion: '1.2'
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2025-04-01' = {
  parent: cluster
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    // A proxy in front of the shards: the client sees one endpoint. A call's keys share a hash tag, so the
    // session store's multi-key transactions stay in one slot however many shards there are.
    clusteringPolicy: 'EnterpriseCluster'
    evictionPolicy: 'NoEviction' // a session must never be evicted mid-call; TTLs bound memory
    accessKeysAuthentication: 'Disabled'
  }
}

output name string = cluster.name
output hostName string = cluster.properties.hostName
output url string = 'rediss://${cluster.properties.hostName}:10000'
