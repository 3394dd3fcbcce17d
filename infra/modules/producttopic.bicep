// The product's own events (docs/events.md): a custom Event Grid topic taking CloudEvents 1.0.
// Local auth (topic keys, SAS) is off: the Function App publishes with its managed identity, which
// modules/producttopicaccess.bicep gives the EventGrid Data Sender role.

param name string
param location string
param tags object = {}

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  //checkov:skip=CKV_AZURE_193: the Function App (no virtual network) publishes and webhooks are delivered over the public endpoint; local auth is off, publishing needs EventGrid Data Sender
  name: name
  location: location
  tags: tags
  // delivers to subscribers (and dead-letters) with its own identity rather than a key or SAS
  identity: { type: 'SystemAssigned' }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

output id string = topic.id
output name string = topic.name
output endpoint string = topic.properties.endpoint
