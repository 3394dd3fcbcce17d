// Who may publish to and who receives the product's events (modules/producttopic.bicep):
// - the Function App's identity gets EventGrid Data Sender on the topic (and nothing more);
// - an optional webhook subscription (CloudEvents 1.0 delivery) when webhookUrl is given, e.g. a
//   replenishment or pricing system; more can be added to the topic later without this template.

param topicName string
@description('Object id of the Function App\'s system-assigned identity.')
param publisherPrincipalId string
@description('Optional https webhook that receives every product event; empty: no subscription.')
param webhookUrl string = ''
@description('Event types delivered to the webhook; empty: every type.')
param webhookEventTypes array = []
param webhookSubscriptionName string = 'product-events-webhook'

var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topic 'Microsoft.EventGrid/topics@2022-06-15' existing = {
  name: topicName
}

resource senderRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, publisherPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
  }
}

resource webhook 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = if (!empty(webhookUrl)) {
  parent: topic
  name: webhookSubscriptionName
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: webhookUrl
      }
    }
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    filter: empty(webhookEventTypes) ? {} : {
      includedEventTypes: webhookEventTypes
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output senderRoleId string = senderRole.id
