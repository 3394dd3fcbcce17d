// manymodels on Azure: storage, Key Vault, monitoring, container registry, Azure ML workspace +
// compute cluster, the Function App (Flex Consumption) and the Event Grid wiring.
// Names derive from NAMESPACE as in the original accelerator ({ns}aml, {ns}sa, {ns}kv, ...).
// Deployed twice by pipelines/ado/bootstrap.yml: first with deployEventSubscriptions=false, then,
// once the function code is deployed, with true (Event Grid checks the target functions exist).
// No secret or account key is written here: every connection is by managed identity.
// backend picks the Azure ML SDK the Function App uses (MANYMODELS_BACKEND): 'amlv2' (azure-ai-ml,
// the default: SDK v1 support ended 30 June 2026) or 'aml' (azureml-core, existing v1 deployments);
// docs/deploy-azure.md ('Which backend', section 9) says how to choose and how to move to v2.

targetScope = 'resourceGroup'

@description('NAMESPACE: prefix of every resource name; 3-18 lower-case letters and digits.')
@minLength(3)
@maxLength(18)
param namespace string
param location string = resourceGroup().location
param tags object = { application: 'manymodels' }

@description('MANYMODELS_BACKEND: amlv2 (Azure ML SDK v2, azure-ai-ml) or aml (SDK v1, azureml-core; support ended 30 June 2026).')
@allowed(['amlv2', 'aml'])
param backend string = 'amlv2'

@description('Replication of the product\'s storage account (landing data, ledger, deployment state). Standard_LRS only in a region without a paired region.')
@allowed(['Standard_GRS', 'Standard_RAGRS', 'Standard_ZRS', 'Standard_GZRS', 'Standard_RAGZRS', 'Standard_LRS'])
param storageSku string = 'Standard_GRS'

@description('AML_COMPUTE_NAME: compute cluster of the training and forecasting pipelines.')
param computeName string = 'cpu-compute'
param computeVmSize string = 'STANDARD_D2_V2'
@minValue(0)
param computeMinNodes int = 0
@minValue(1)
param computeMaxNodes int = 4

@description('Object id of the principal running the bootstrap (it uploads the sample data by identity).')
param deployerPrincipalId string = ''

@description('Backend aml: object id of the identity the routing webservice runs as on AKS (the cluster\'s kubelet identity): it gets Key Vault Secrets User to read the group keys. On amlv2 the router has its own identity (modules/routeridentity.bicep).')
param routerPrincipalId string = ''

@description('Create the Event Grid subscriptions (needs the functions deployed).')
param deployEventSubscriptions bool = false

@description('Optional https webhook subscribed to the product\'s own events (docs/events.md); empty: none.')
param eventsWebhookUrl string = ''
@description('Product event types the webhook receives (e.g. manymodels.forecasts.ready); empty: all.')
param eventsWebhookEventTypes array = []

// Product settings (the variable group's values; shared/settings.py checks them at start-up).
@allowed(['customscript', 'automl'])
param trainingMethod string = 'customscript'
@allowed(['changed', 'all'])
param trainingMode string = 'changed'
@description('DEPLOY_ACI: Azure Container Instances webservices; backend aml only (SDK v2 has none).')
param deployAci bool = false
@description('DEPLOY_MANAGED: managed online endpoints; backend amlv2 only.')
param deployManaged bool = false
@description('DEPLOY_AKS: the attached AKS cluster (aml: AKS webservices; amlv2: Kubernetes online endpoints).')
param deployAks bool = false
param aksName string = ''
param aksResourceGroup string = ''
@minValue(1)
@maxValue(1000)
param maxContainerSize int = 500
param resetDeployment bool = false
param updateDeployment bool = false
param splittingTags string = ''
param sortingTags string = 'Store'
@minValue(1)
param datasetMaxFiles int = 11973
@minValue(1)
param dataQuietSeconds int = 120
@minValue(1)
param runTimeoutMinutes int = 240

var names = {
  storage: '${namespace}sa'
  keyVault: '${namespace}kv'
  appInsights: '${namespace}ai'
  logAnalytics: '${namespace}law'
  registry: '${namespace}cr'
  workspace: '${namespace}aml'
  functionApp: '${namespace}func'
  plan: '${namespace}plan'
  eventsTopic: '${namespace}-events'
  routerIdentity: '${namespace}-router'
}
var sdkV2 = backend == 'amlv2'
var containers = {
  landing: 'landing'
  predictions: 'predictions'
  deadletter: 'deadletter'
  datasets: 'datasets' // dataset versions' file lists (shared/workspace/aml/datasets.py)
  deployment: 'app-package' // the Function App's code package (Flex Consumption)
}
var deployQueue = 'deploy-tasks'
var ledgerTable = 'manymodelsledger'

// The one declaration of Event Grid subscriptions, shared with the local host.
var eventGrid = loadJsonContent('eventgrid/subscriptions.json')

// Every setting shared/settings.py reads (tests/unit/test_infra_bicep.py checks the list), except
// AzureWebJobsStorage, which is identity-based (AzureWebJobsStorage__* in modules/functionapp.bicep).
var appSettings = {
  MANYMODELS_BACKEND: backend
  MANYMODELS_HOME: '/tmp/manymodels'
  LANDING_CONTAINER: containers.landing
  PREDICTIONS_CONTAINER: containers.predictions
  TRAINING_METHOD: trainingMethod
  DEPLOY_LOCAL: 'false'
  DEPLOY_ACI: string(deployAci)
  DEPLOY_MANAGED: string(deployManaged)
  DEPLOY_AKS: string(deployAks)
  AKS_NAME: aksName
  AKS_RESOURCE_GROUP: aksResourceGroup
  MAX_CONTAINER_SIZE: string(maxContainerSize)
  RESET_DEPLOYMENT: string(resetDeployment)
  UPDATE_DEPLOYMENT: string(updateDeployment)
  SPLITTING_TAGS: splittingTags
  SORTING_TAGS: sortingTags
  WEBSERVICE_PREFIX: 'manymodels-'
  ROUTING_MODEL_NAME: 'deployed_models_info'
  ROUTING_SERVICE_NAME: 'routing-manymodels'
  DATA_QUIET_SECONDS: string(dataQuietSeconds)
  TRAINING_MODE: trainingMode
  DATASET_MAXFILES: string(datasetMaxFiles)
  DEPLOY_QUEUE: deployQueue
  LEDGER_TABLE: ledgerTable
  NAMESPACE: namespace
  LOCATION: location
  RESOURCE_GROUP: resourceGroup().name
  AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
  AML_WORKSPACE_NAME: names.workspace
  AML_COMPUTE_NAME: computeName
  TRAINING_PIPELINE_NAME: 'manymodels-training'
  FORECASTING_PIPELINE_NAME: 'manymodels-forecasting'
  RUN_TIMEOUT_MINUTES: string(runTimeoutMinutes)
  RETENTION_LEDGER_HOURS: '48'
  RETENTION_MODEL_VERSIONS: '3'
  RETENTION_RUN_DAYS: '14'
  // The product's events go to the custom topic by managed identity (EventGrid Data Sender): no key.
  EVENTS_TOPIC_ENDPOINT: productTopic.outputs.endpoint
  EVENTS_TOPIC_KEY: ''
  // SDK v2: the identity the router endpoint runs as and calls the group endpoints with
  // (modules/routeridentity.bicep); empty on SDK v1, whose router uses the group keys in Key Vault.
  ROUTER_IDENTITY_RESOURCE_ID: sdkV2 ? routerIdentity.outputs.id : ''
  ROUTER_IDENTITY_CLIENT_ID: sdkV2 ? routerIdentity.outputs.clientId : ''
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    sku: storageSku
    containers: [
      containers.landing
      containers.predictions
      containers.deadletter
      containers.datasets
      containers.deployment
    ]
    deployQueue: deployQueue
    ledgerTable: ledgerTable
    dataWriterPrincipalId: deployerPrincipalId
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    routerPrincipalId: routerPrincipalId
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    name: names.registry
    location: location
    tags: tags
    // SDK v1 ACI webservices pull with the admin credentials; on SDK v2 every pull is by identity
    adminUserEnabled: !sdkV2
  }
}

module aml 'modules/aml.bicep' = {
  name: 'aml'
  params: {
    name: names.workspace
    location: location
    tags: tags
    storageAccountId: storage.outputs.id
    storageAccountName: storage.outputs.name
    keyVaultId: keyVault.outputs.id
    appInsightsId: monitoring.outputs.appInsightsId
    containerRegistryId: registry.outputs.id
    computeName: computeName
    computeVmSize: computeVmSize
    computeMinNodes: computeMinNodes
    computeMaxNodes: computeMaxNodes
    datastoreContainers: [
      containers.landing
      containers.predictions
      // SDK v2 pipeline jobs read their file selection from here (shared/workspace/amlv2/datasets.py job_inputs)
      containers.datasets
    ]
  }
}

module routerIdentity 'modules/routeridentity.bicep' = if (sdkV2) {
  name: 'routeridentity'
  params: {
    name: names.routerIdentity
    location: location
    tags: tags
    workspaceName: aml.outputs.name
    registryName: registry.outputs.name
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    readsGroupKeys: deployAks
  }
}

module productTopic 'modules/producttopic.bicep' = {
  name: 'producttopic'
  params: {
    name: names.eventsTopic
    location: location
    tags: tags
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    deploymentContainer: containers.deployment
    appInsightsConnectionString: monitoring.outputs.connectionString
    appInsightsId: monitoring.outputs.appInsightsId
    workspaceName: aml.outputs.name
    appSettings: appSettings
    routerIdentityName: sdkV2 ? names.routerIdentity : ''
  }
}

module eventGridWiring 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    namespace: namespace
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    workspaceName: aml.outputs.name
    functionAppId: functionApp.outputs.id
    subscriptions: eventGrid.subscriptions
    deploySubscriptions: deployEventSubscriptions
    deadLetterContainer: containers.deadletter
  }
}

module productTopicAccess 'modules/producttopicaccess.bicep' = {
  name: 'producttopicaccess'
  params: {
    topicName: productTopic.outputs.name
    publisherPrincipalId: functionApp.outputs.principalId
    webhookUrl: eventsWebhookUrl
    webhookEventTypes: eventsWebhookEventTypes
  }
}

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.hostName
output storageAccountName string = storage.outputs.name
output workspaceName string = aml.outputs.name
output computeName string = computeName
output backend string = backend
output routerIdentityClientId string = sdkV2 ? routerIdentity.outputs.clientId : ''
output eventsTopicEndpoint string = productTopic.outputs.endpoint
