// The media host: an always-on container carrying every call's audio over WebSockets (ACS media,
// AudioCodes `/ws`, browser). Scales out on concurrent connections and drains calls before it stops.
param location string
param tags object
param name string
param environmentId string
param identityId string
param identityClientId string
param registryLoginServer string
@description('Whether azd has deployed the image before (SERVICE_MEDIA_HOST_RESOURCE_EXISTS).')
param exists bool
@description('Settings shared with the Function App (name: value).')
param settings object
param signingSecretUri string
@description('Key Vault URI of the bearer token AudioCodes VoiceAI Connect presents on `/ws`.')
param audiocodesBotTokenUri string
@minValue(1)
param minReplicas int
@minValue(1)
param maxReplicas int
@description('Open WebSockets (calls) per replica before another replica is added.')
@minValue(1)
param callsPerReplica int
@description('Hard cap per replica: sockets beyond it are refused (MEDIA_MAX_CALLS).')
@minValue(1)
param maxCallsPerReplica int
@description('Seconds a stopping replica gets to finish its calls (Container Apps allows up to 600).')
@minValue(30)
@maxValue(600)
param terminationGracePeriodSeconds int
param cpu string
param memory string

var port = 8765 // MEDIA_HOST_PORT; the Dockerfile's EXPOSE
var placeholderImage = 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest'

// azd deploys the image after provisioning; a later provision keeps the deployed one.
resource existingApp 'Microsoft.App/containerApps@2024-10-02-preview' existing = if (exists) {
  name: name
}

var image = exists ? existingApp!.properties.template.containers[0].image : placeholderImage
var keyVaultSecrets = [
  { name: 'signing-secret', keyVaultUrl: signingSecretUri, identity: identityId }
  { name: 'audiocodes-bot-token', keyVaultUrl: audiocodesBotTokenUri, identity: identityId }
]
var secretEnv = [
  { name: 'SIGNING_SECRET', secretRef: 'signing-secret' }
  { name: 'AUDIOCODES_BOT_TOKEN', secretRef: 'audiocodes-bot-token' }
]
var hostSettings = union(settings, {
  MEDIA_HOST_BIND: '0.0.0.0'
  MEDIA_HOST_PORT: string(port)
  MEDIA_MAX_CALLS: string(maxCallsPerReplica)
  // Stop taking calls and drain within the grace period, leaving time to close sockets cleanly.
  SHUTDOWN_GRACE_SECONDS: string(terminationGracePeriodSeconds - 15)
  OTEL_TRACES_EXPORTER: 'otlp' // the managed agent sets OTEL_EXPORTER_OTLP_ENDPOINT
  AZURE_CLIENT_ID: identityClientId // DefaultAzureCredential picks the user-assigned identity
})
var plainEnv = [for item in items(hostSettings): { name: item.key, value: item.value }]
// The placeholder image listens on 80 and has no /health, so probes start with the real image.
// Liveness stays 200 while the host drains, so a draining replica is never restarted mid-call.
var probes = exists ? [
  {
    type: 'Startup'
    httpGet: { path: '/health', port: port }
    periodSeconds: 2
    failureThreshold: 30
  }
  {
    // Not ready while draining or without Redis: new calls go to other replicas, current calls go on.
    type: 'Readiness'
    httpGet: { path: '/ready', port: port }
    periodSeconds: 5
    failureThreshold: 2
  }
  {
    type: 'Liveness'
    httpGet: { path: '/health', port: port }
    periodSeconds: 10
    failureThreshold: 3
  }
] : []

resource app 'Microsoft.App/containerApps@2024-10-02-preview' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'media-host' })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: port
        transport: 'http' // HTTP/1.1: WebSocket upgrades pass through
        allowInsecure: false
        traffic: [ { latestRevision: true, weight: 100 } ]
      }
      registries: [ { server: registryLoginServer, identity: identityId } ]
      secrets: keyVaultSecrets
    }
    template: {
      terminationGracePeriodSeconds: terminationGracePeriodSeconds
      containers: [
        {
          name: 'media-host'
          image: image
          resources: { cpu: json(cpu), memory: memory }
          env: concat(plainEnv, secretEnv)
          probes: probes
        }
      ]
      scale: {
        minReplicas: minReplicas // always on: a call must never wait for a cold start
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'concurrent-calls'
            // Each call is one long-lived WebSocket request, so concurrent requests count calls.
            http: { metadata: { concurrentRequests: string(callsPerReplica) } }
          }
        ]
      }
    }
  }
}

output name string = app.name
output fqdn string = app.properties.configuration.ingress.fqdn
