// Container registry ({ns}cr) where Azure ML builds the environments' images.
// Azure ML SDK v1 webservices on ACI pull their image with the registry's admin credentials
// (ACI "InaccessibleImage" otherwise): Azure ML reads them itself through the workspace's
// identity; they never appear in this template, a pipeline or the app settings. On SDK v2
// (backend 'amlv2') every pull is by managed identity and the admin account is off.

param name string
param location string
param tags object = {}
@description('Only SDK v1 ACI webservices need the admin account (infra/main.bicep: backend aml).')
param adminUserEnabled bool = false

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  //checkov:skip=CKV_AZURE_139: Azure ML compute and online endpoints pull over the public endpoint (no virtual network in this template); a Basic registry has no network rules
  //checkov:skip=CKV_AZURE_166: quarantine needs the Premium tier; images are built by Azure ML from the repository's environment files (pipelines/configuration/environment-*.yml)
  //checkov:skip=CKV_AZURE_163: image scanning is Microsoft Defender for Containers, enabled per subscription, not a registry property (docs/deploy-azure.md)
  name: name
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: {
    adminUserEnabled: adminUserEnabled
  }
}

output id string = registry.id
output name string = registry.name
