// The Function App ({ns}func) on Flex Consumption: Python 3.11, system-assigned identity, code
// package and AzureWebJobsStorage by identity (no connection string, no key), every app setting
// from main.bicep, and least-privilege role assignments for its identity.

param name string
param planName string
param location string
param tags object = {}
param storageAccountName string
@description('Blob container holding the deployed code package.')
param deploymentContainer string
param appInsightsConnectionString string
param appInsightsId string
param workspaceName string
@description('Every app setting of the product (docs/architecture.md section 7), names as shared/settings.py reads them.')
param appSettings object
@description('SDK v2: the user-assigned identity the router endpoint runs as (modules/routeridentity.bicep), which this app attaches to the endpoint it creates; empty: none.')
param routerIdentityName string = ''
param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048

// Built-in role ids.
var roles = {
  // the Functions host keeps leases and its own containers in AzureWebJobsStorage: Owner is the
  // documented minimum for identity-based host storage
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // submit pipelines, register models and deploy webservices; cannot create or delete workspaces
  // or compute
  azureMlDataScientist: 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  // attach the router's user-assigned identity to the endpoint it creates (assign/action); nothing else
  managedIdentityOperator: 'f1a07417-d97a-45cb-824c-7a7467783830'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: last(split(appInsightsId, '/'))
}

// only referenced when routerIdentityName is given (the role assignment below is conditional)
resource routerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: empty(routerIdentityName) ? 'unused' : routerIdentityName
}

// Flex Consumption is zone redundant only with zone-redundant storage in a region with availability
// zones: not a default of this template (docs/deploy-azure.md, section 10).
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225: zone redundancy needs Standard_ZRS storage and an availability-zone region, a per-deployment choice (docs/deploy-azure.md, section 10)
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

// Identity-based AzureWebJobsStorage (used by the host, the queue trigger and shared/storage).
var storageSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__blobServiceUri: 'https://${storageAccountName}.blob.${environment().suffixes.storage}'
  AzureWebJobsStorage__queueServiceUri: 'https://${storageAccountName}.queue.${environment().suffixes.storage}'
  AzureWebJobsStorage__tableServiceUri: 'https://${storageAccountName}.table.${environment().suffixes.storage}'
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_222: Event Grid delivers to the functions and clients call /api over the public endpoint; this template has no virtual network, access is by function keys and Entra ID
  //checkov:skip=CKV_AZURE_17: client certificates would refuse Event Grid's deliveries, which present none; HTTP functions are protected by function keys
  //checkov:skip=CKV_AZURE_212: Flex Consumption scales out per event from zero; a fixed instance minimum is not how this plan fails over
  //checkov:skip=CKV_AZURE_213: the App Service health check is not available on Flex Consumption; /api/health is called by the bootstrap's smoke test (pipelines/ado/scripts/smoke_test.sh)
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: 'https://${storageAccountName}.blob.${environment().suffixes.storage}/${deploymentContainer}'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

// The checks below read a site's 'web' configuration; this resource is its 'appsettings'.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_66: this is the appsettings configuration, not the web configuration the check reads (logs go to Application Insights)
  //checkov:skip=CKV_AZURE_63: this is the appsettings configuration, not the web configuration the check reads (logs go to Application Insights)
  //checkov:skip=CKV_AZURE_65: this is the appsettings configuration, not the web configuration the check reads; detailed errors would show internals to callers
  //checkov:skip=CKV_AZURE_80: a Python 3.11 function app (functionAppConfig.runtime) has no .NET Framework version
  //checkov:skip=CKV_AZURE_88: Flex Consumption keeps its code package in blob storage by identity, not Azure Files
  //checkov:skip=CKV_AZURE_13: App Service Authentication in front of the app would refuse Event Grid's deliveries; HTTP functions check function keys
  //checkov:skip=CKV_AZURE_222: this is the appsettings configuration, not the site; the site's public access is explained on the site
  parent: site
  name: 'appsettings'
  properties: union(appSettings, storageSettings)
}

resource blobRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, site.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource queueRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, site.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

resource tableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, site.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
  }
}

resource workspaceRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, site.id, roles.azureMlDataScientist)
  scope: workspace
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureMlDataScientist)
  }
}

resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, site.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource routerIdentityOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(routerIdentityName)) {
  name: guid(routerIdentity.id, site.id, roles.managedIdentityOperator)
  scope: routerIdentity
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.managedIdentityOperator)
  }
}

output id string = site.id
output name string = site.name
output hostName string = site.properties.defaultHostName
output principalId string = site.identity.principalId
