// Container registry ({ns}cr) where Azure ML builds the environments' images.
// Azure ML SDK v1 webservices on ACI pull their image with the registry's admin credentials
// (ACI "InaccessibleImage" otherwise): Azure ML reads them itself through the workspace's
// identity; they never appear in this template, a pipeline or the app settings.

param name string
param location string
param tags object = {}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: {
    adminUserEnabled: true
  }
}

output id string = registry.id
output name string = registry.name
