// The Event Grid subscription that delivers IncomingCall to the `on_incoming_call` function.
// Event Grid checks that the function exists when the subscription is created, so this is deployed once
// the code is (the azd postdeploy hook turns `subscribeIncomingCalls` on and provisions again).
param systemTopicName string
param functionAppName string
@description('Function that answers calls (function_app.py).')
param functionName string = 'on_incoming_call'
@description('E.164 numbers this deployment answers; empty: every number on the ACS resource.')
param calledNumbers array = []

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' existing = {
  name: systemTopicName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {
  parent: topic
  name: 'incoming-call-to-functions'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/${functionName}'
        maxEventsPerBatch: 1 // one call per invocation: a slow answer never holds up another call
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [ 'Microsoft.Communication.IncomingCall' ]
      enableAdvancedFilteringOnArrays: true
      advancedFilters: empty(calledNumbers) ? [] : [
        {
          operatorType: 'StringIn'
          key: 'data.to.phoneNumber.value'
          values: calledNumbers
        }
      ]
    }
    // A caller hangs up after ~30 s of ringing, so a late delivery is worthless: retry briefly, then drop.
    // Duplicates are harmless (the function de-duplicates on the incoming call context).
    retryPolicy: {
      maxDeliveryAttempts: 3
      eventTimeToLiveInMinutes: 1
    }
  }
}

output name string = subscription.name
