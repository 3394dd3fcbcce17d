// Key Vault ({ns}kv) for the Azure ML workspace: RBAC authorization, no access policies, no secrets
// written by this template. The routing webservice reads its group keys here (Key Vault Secrets User).

param name string
param location string
param tags object = {}

@description('Object id of the identity the routing webservice runs as (on AKS the kubelet identity): it reads the group keys the Azure ML adapter stores here (shared/workspace/aml/services.py).')
param routerPrincipalId string = ''

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }
}

resource routerSecretsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(routerPrincipalId)) {
  name: guid(vault.id, routerPrincipalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: routerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

output id string = vault.id
output name string = vault.name
