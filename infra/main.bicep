// manymodels on Azure: storage, Key Vault, monitoring, container registry, Azure ML workspace +
// compute cluster, the Function App (Flex Consumption) and the Event Grid wiring.
// Names derive from NAMESPACE as in the original accelerator ({ns}aml, {ns}sa, {ns}kv, ...).
// Deployed twice by pipelines/ado/bootstrap.yml: first with deployEventSubscriptions=false, then,
// once the function code is deployed, with true (Event Grid checks the target functions exist).
// No secret or account key is written here: every connection is by managed identity.

targetScope = 'resourceGroup'

@description('NAMESPACE: prefix of every resource name; 3-18 lower-case letters and digits.')
@minLength(3)
@maxLength(18)
param namespace string
param location string = resourceGroup().location
param tags object = { application: 'manymodels' }

@description('AML_COMPUTE_NAME: compute cluster of the training and forecasting pipelines.')
param computeName string = 'cpu-compute'
param computeVmSize string = 'STANDARD_D2_V2'
@minValue(0)
param computeMinNodes int = 0
@minValue(1)
param computeMaxNodes int = 4

@description('Object id of the principal running the bootstrap (it uploads the sample data by identity).')
param deployerPrincipalId string = ''

@description('Object id of the identity the routing webservice runs as on AKS (the cluster\'s kubelet identity): it gets Key Vault Secrets User to read the group keys.')
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
param deployAci bool = false
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
}
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
  MANYMODELS_BACKEND: 'aml'
  MANYMODELS_HOME: '/tmp/manymodels'
  LANDING_CONTAINER: containers.landing
  PREDICTIONS_CONTAINER: containers.predictions
  TRAINING_METHOD: trainingMethod
  DEPLOY_LOCAL: 'false'
  DEPLOY_ACI: string(deployAci)
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
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
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
    ]
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
output eventsTopicEndpoint string = productTopic.outputs.endpoint
