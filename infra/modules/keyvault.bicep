// Key Vault ({ns}kv) for the Azure ML workspace: RBAC authorization, no access policies, no secrets
// written by this template. The routing webservice reads its group keys here (Key Vault Secrets User).

param name string
param location string
param tags object = {}

@description('Object id of the identity the routing webservice runs as (on AKS the kubelet identity): it reads the group keys the Azure ML adapter stores here (shared/workspace/aml/services.py).')
param routerPrincipalId string = ''

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_189: the Azure ML workspace, the Function App (no virtual network) and the SDK v1 router on AKS reach the vault over its public endpoint; access is by Entra ID and RBAC only
  //checkov:skip=CKV_AZURE_109: a firewall would refuse the Function App and the SDK v1 router on AKS, which are not trusted services and have no fixed address; access is by Entra ID and RBAC only
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // a deleted vault (and its group keys) cannot be purged before its retention ends; the
    // namespace's vault name stays taken for those 7 days after a teardown
    enablePurgeProtection: true
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
