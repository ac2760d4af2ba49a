/** The Elasticsearch / OpenSearch backend (`elasticsearch+https://host/INDEX`); needs `@elastic/elasticsearch`. */
export {
  AIRFLOW_LOG_ID_TEMPLATE,
  type ElasticsearchSettings,
  elasticsearchSettings,
} from './settings.js';
export { ElasticsearchStore, type ElasticsearchStoreOptions } from './store.js';
