// The identity the routing endpoint runs as on SDK v2 (backend 'amlv2', managed online endpoints): a
// user-assigned identity, made here because Bicep cannot grant a role to an endpoint's system-assigned
// identity (that exists only once the Function App has created the endpoint, and is replaced when the
// endpoint is recreated), and the Function App itself must not be able to create role assignments.
// Its rights, each the least that works:
// - call the model-group endpoints with Microsoft Entra tokens: a custom role holding only
//   Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action, on the workspace;
// - pull the scoring image (AcrPull) and download its model (Storage Blob Data Reader): an endpoint
//   with a user-assigned identity gets no automatic role assignment, unlike a system-assigned one.
// - with Kubernetes online endpoints (DEPLOY_AKS), which take keys, not Entra tokens: read the group
//   keys the adapter keeps in the workspace's Key Vault (Key Vault Secrets User), and only then.
// The Function App's identity may attach it to the router endpoint it creates (Managed Identity
// Operator on this identity only: modules/functionapp.bicep). docs/deploy-azure.md, 'The router's identity'.

param name string
param location string
param tags object = {}
param workspaceName string
param registryName string
param storageAccountName string
param keyVaultName string
@description('The router reads group keys from Key Vault: true with Kubernetes online endpoints (DEPLOY_AKS).')
param readsGroupKeys bool = false

var roles = {
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}
var scoreAction = 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action'

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

// Role names are unique in the tenant: the subscription and resource group make this one so.
resource scorer 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'manymodels-online-endpoint-scorer')
  properties: {
    roleName: 'manymodels online endpoint scorer (${subscription().subscriptionId}/${resourceGroup().name})'
    description: 'Score the Azure ML online endpoints of the workspace with a Microsoft Entra token; nothing else.'
    type: 'customRole'
    permissions: [
      {
        actions: [
          scoreAction
        ]
        notActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource scoreRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, identity.id, scorer.id)
  scope: workspace
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: scorer.id
  }
}

resource pullRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identity.id, roles.acrPull)
  scope: registry
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
  }
}

resource modelReadRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataReader)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
  }
}

resource groupKeysRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (readsGroupKeys) {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
