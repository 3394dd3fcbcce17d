// Event Grid system topics for the storage account and the Azure ML workspace, and - once the
// Function App's code (its functions) exists - the subscriptions declared in
// infra/eventgrid/subscriptions.json (the same file the local host delivers from).
// Delivery: Azure Function endpoint, the declared retry policy, dead-lettering to the
// 'deadletter' container with the topic's own identity (no key, no SAS).

param namespace string
param location string
param tags object = {}
param storageAccountName string
param workspaceName string
param functionAppId string
@description('Subscriptions from infra/eventgrid/subscriptions.json.')
param subscriptions array
@description('Create the subscriptions (false until the functions are deployed: Event Grid checks they exist).')
param deploySubscriptions bool
param deadLetterContainer string = 'deadletter'

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// 'topic' in the declaration names one of these system topics.
var topicNames = {
  storage: '${namespace}-storage-events'
  workspace: '${namespace}-aml-events'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

resource storageTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: topicNames.storage
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource workspaceTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: topicNames.workspace
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: workspace.id
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

// Topics write undeliverable events to the deadletter container with their own identity.
resource storageTopicDeadLetter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, storageTopic.id, storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: storageTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

resource workspaceTopicDeadLetter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, workspaceTopic.id, storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: workspaceTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

resource eventSubscriptions 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = [for s in subscriptions: if (deploySubscriptions) {
  name: '${topicNames[s.topic]}/${s.name}'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${s.function}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: s.includedEventTypes
      subjectBeginsWith: s.subjectBeginsWith
      subjectEndsWith: s.subjectEndsWith
    }
    retryPolicy: {
      maxDeliveryAttempts: s.maxDeliveryAttempts
      eventTimeToLiveInMinutes: s.eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
  dependsOn: [
    storageTopic
    workspaceTopic
    storageTopicDeadLetter
    workspaceTopicDeadLetter
  ]
}]

output storageTopicName string = storageTopic.name
output workspaceTopicName string = workspaceTopic.name
