// The product's storage account: landing/predictions/deadletter containers, the Flex Consumption
// deployment container, the datasets metadata container, the deploy queue and the ledger table.
// Every client (Function App, Azure ML compute, Event Grid) reaches it by managed identity.

@description('Storage account name ({ns}sa): 3-24 lower-case letters and digits.')
param name string
param location string
param tags object = {}
@description('Containers to create (landing, predictions, deadletter, ...).')
param containers array
@description('Queue of deployment group tasks (DEPLOY_QUEUE).')
param deployQueue string
@description('Table of the idempotency ledger (LEDGER_TABLE).')
param ledgerTable string
@description('Object id of the principal running the bootstrap, which uploads the sample data; empty: none.')
param dataWriterPrincipalId string = ''
@description('Replication (infra/main.bicep storageSku).')
param sku string = 'Standard_GRS'

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35: the Function App (no virtual network), Event Grid and Azure ML compute reach the account over its public endpoint; every client authenticates with Entra ID, and no key leaves Azure ML
  name: name
  location: location
  tags: tags
  sku: { name: sku }
  kind: 'StorageV2'
  properties: {
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    // The Azure ML workspace's own default datastores still use the account's keys, which Azure ML
    // manages itself; nothing in this product reads or stores a key.
    allowSharedKeyAccess: true
    accessTier: 'Hot'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in containers: {
  parent: blobService
  name: c
  properties: { publicAccess: 'None' }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: deployQueue
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource table 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: ledgerTable
}

resource dataWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(dataWriterPrincipalId)) {
  name: guid(account.id, dataWriterPrincipalId, storageBlobDataContributor)
  scope: account
  properties: {
    principalId: dataWriterPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
