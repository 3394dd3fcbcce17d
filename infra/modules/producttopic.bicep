// The product's own events (docs/events.md): a custom Event Grid topic taking CloudEvents 1.0.
// Local auth (topic keys, SAS) is off: the Function App publishes with its managed identity, which
// modules/producttopicaccess.bicep gives the EventGrid Data Sender role.

param name string
param location string
param tags object = {}

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

output id string = topic.id
output name string = topic.name
output endpoint string = topic.properties.endpoint
