// Log Analytics and Application Insights: where both apps' logs, traces and metrics land.
@description('Azure region.')
param location string
param tags object
param logAnalyticsName string
param appInsightsName string
@description('Days Log Analytics keeps data (30 is included in the ingestion price).')
@minValue(30)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: retentionInDays
    features: { disableLocalAuth: true }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Telemetry is accepted only with an Entra token (the apps' managed identities), never the bare key.
    DisableLocalAuth: true
  }
}

output logAnalyticsId string = workspace.id
output logAnalyticsName string = workspace.name
output appInsightsName string = appInsights.name
output appInsightsConnectionString string = appInsights.properties.ConnectionString
