// The Container Apps environment the media host runs in; console logs go to Log Analytics and traces,
// through the managed OpenTelemetry agent, to Application Insights.
param location string
param tags object
param name string
param logAnalyticsName string
@secure()
param appInsightsConnectionString string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource environment 'Microsoft.App/managedEnvironments@2024-10-02-preview' = {
  name: name
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
    appInsightsConfiguration: { connectionString: appInsightsConnectionString }
    openTelemetryConfiguration: {
      tracesConfiguration: { destinations: [ 'appInsights' ] }
    }
    workloadProfiles: [ { name: 'Consumption', workloadProfileType: 'Consumption' } ]
    zoneRedundant: false
  }
}

output id string = environment.id
output name string = environment.name
output defaultDomain string = environment.properties.defaultDomain
