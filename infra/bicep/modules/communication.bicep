// Azure Communication Services and the Event Grid system topic its IncomingCall events arrive on.
// Phone numbers are bought outside Bicep (portal or `az communication phonenumber`): see docs/deploy.md.
param tags object
param name string
param systemTopicName string
@description('Where ACS keeps data at rest, e.g. "United States", "Europe".')
param dataLocation string

resource acs 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: name
  location: 'global'
  tags: tags
  // ACS calls Azure AI Speech for the Call Automation actions that speak or recognise (play, recognize)
  // with this identity, so no Speech key is handed to it.
  identity: { type: 'SystemAssigned' }
  properties: {
    dataLocation: dataLocation
  }
}

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: systemTopicName
  location: 'global'
  tags: tags
  properties: {
    source: acs.id
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

output name string = acs.name
output id string = acs.id
output endpoint string = 'https://${acs.properties.hostName}'
// What ACS's JWTs carry as audience: the callbacks and media sockets are checked against it.
output immutableResourceId string = acs.properties.immutableResourceId
output principalId string = acs.identity.principalId
output systemTopicName string = topic.name
