// The Durable Task Scheduler backend for Durable Functions (optional: main.bicep's durableBackend). A managed
// scheduler pushes work items to the app over gRPC instead of the app polling storage queues, so a raised event
// (a hang-up, a transfer) reaches call_session without the Azure Storage provider's polling back-off.
// docs/durable.md has the trade-off. Resource types and API version as in Azure-Samples/Durable-Task-Scheduler
// (samples/durable-functions/python/pdf-summarizer/infra/app/dts.bicep).
param location string
param tags object
param name string
@description('Task hub name: host.json extensions.durableTask.hubName (tests/infra checks they are equal).')
param taskHubName string
@allowed([ 'Consumption', 'Dedicated' ])
@description('Consumption: pay per action, up to 500 actions/s. Dedicated: capacity units billed monthly.')
param skuName string

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // An empty list denies every caller; Flex Consumption without a VNet has no fixed outbound address.
    // Access is the Function App's identity with Durable Task Data Contributor (access.bicep).
    ipAllowlist: [ '0.0.0.0/0' ]
    sku: { name: skuName }
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
}

output name string = scheduler.name
output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
