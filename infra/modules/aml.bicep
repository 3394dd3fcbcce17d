// Azure ML workspace ({ns}aml) with a system-assigned identity, linked to the storage account,
// Key Vault, Application Insights and container registry; the compute cluster the pipelines run
// on; and identity-based datastores for the landing and predictions containers (no keys).

param name string
param location string
param tags object = {}
param storageAccountId string
param storageAccountName string
param keyVaultId string
param appInsightsId string
param containerRegistryId string
@description('Compute cluster name (AML_COMPUTE_NAME).')
param computeName string
param computeVmSize string
@minValue(0)
param computeMinNodes int
@minValue(1)
param computeMaxNodes int
@description('Containers registered as datastores (datastore name = container name with - as _).')
param datastoreContainers array

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' = {
  //checkov:skip=CKV_AZURE_243: this template deploys no virtual network; the workspace is reached over its public endpoint with Entra ID (a private-link deployment is a network design of its own)
  name: name
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  sku: { name: 'Basic', tier: 'Basic' }
  properties: {
    friendlyName: name
    storageAccount: storageAccountId
    keyVault: keyVaultId
    applicationInsights: appInsightsId
    containerRegistry: containerRegistryId
    publicNetworkAccess: 'Enabled'
  }
}

resource compute 'Microsoft.MachineLearningServices/workspaces/computes@2024-04-01' = {
  parent: workspace
  name: computeName
  location: location
  identity: { type: 'SystemAssigned' }
  properties: {
    computeType: 'AmlCompute'
    properties: {
      vmSize: computeVmSize
      vmPriority: 'Dedicated'
      scaleSettings: {
        minNodeCount: computeMinNodes
        maxNodeCount: computeMaxNodes
        nodeIdleTimeBeforeScaleDown: 'PT300S'
      }
    }
  }
}

resource datastores 'Microsoft.MachineLearningServices/workspaces/datastores@2024-04-01' = [for c in datastoreContainers: {
  parent: workspace
  name: replace(c, '-', '_')
  properties: {
    datastoreType: 'AzureBlob'
    accountName: storageAccountName
    containerName: c
    endpoint: environment().suffixes.storage
    protocol: 'https'
    credentials: { credentialsType: 'None' }
    serviceDataAccessAuthIdentity: 'WorkspaceSystemAssignedIdentity'
  }
}]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

// Pipeline steps read the landing datastore and write models and predictions with the cluster's
// identity (credential-less datastores).
resource computeBlobAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, compute.id, storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: compute.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

output id string = workspace.id
output name string = workspace.name
output principalId string = workspace.identity.principalId
