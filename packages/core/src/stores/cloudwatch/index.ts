/** The CloudWatch Logs backend (`cloudwatch://LOG_GROUP_ARN`); needs `@aws-sdk/client-cloudwatch-logs`. */
export {
  type CloudWatchSettings,
  type CloudWatchStoreOptions,
  cloudwatchSettings,
} from './settings.js';
export { CloudWatchStore } from './store.js';
