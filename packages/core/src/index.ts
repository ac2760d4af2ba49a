/**
 * @tasklog/core: task attempts' logs in a remote store, written by a shipper, found through a
 * catalog. The cloud backends live at their own subpaths (`@tasklog/core/stores/s3`, …) and need
 * their SDK installed; `openStore(url)` picks one by URL scheme. See docs/LIBRARY.md.
 *
 * @packageDocumentation
 */

// Agents and proxies: tokens between them, Airflow's database, safe paths, backoff.
export {
  AGENT_TOKEN_ALGORITHMS,
  AGENT_TOKEN_AUDIENCE,
  type AgentTokenAlgorithm,
  type AgentTokenClaims,
  type AgentTokenKeySource,
  type AgentTokenKeys,
  loadAgentTokenKeys,
  MAX_AGENT_TOKEN_LIFETIME_SECONDS,
  type SignAgentTokenOptions,
  signAgentToken,
  type VerifyAgentTokenOptions,
  verifyAgentToken,
} from './agent-token.js';
export {
  type AirflowDb,
  type AirflowRunRef,
  type AirflowTryStatus,
  openAirflowDb,
} from './airflow/airflow-db.js';
// Attempts and where their logs live.
export {
  type AttemptKey,
  attemptKey,
  formatAttempt,
  MAX_ID_LENGTH,
  parseIntStrict,
  sameAttempt,
  validateId,
} from './attempt-key.js';
export { AttemptBusyError } from './attempt-lock.js';
// Writing and shipping logs.
export {
  type AttemptLog,
  type AttemptLogOptions,
  type AttemptOutcome,
  openAttemptLog,
} from './attempt-log.js';
// The catalog of attempts.
export type {
  AttemptPatch,
  AttemptRecord,
  AttemptState,
  Catalog,
  CatalogDeleteOptions,
  CatalogListOptions,
  DagGroup,
  FinishedCursor,
  FinishedPage,
  FinishedQuery,
  FinishedState,
  GroupLevel,
  GroupPage,
  GroupQuery,
  GroupsOf,
  RunGroup,
  TaskGroup,
} from './catalog/catalog.js';
export { FINISHED_STATES } from './catalog/catalog.js';
export { migrateCatalogUrl, type OpenCatalogOptions, openCatalog } from './catalog/open-catalog.js';
export {
  COMPLETION_MARKER_SUFFIX,
  type CompletionMarker,
  hasCompletionMarker,
  readCompletionMarker,
} from './completion-marker.js';
// Configuration.
export {
  type ConfigValueSource,
  configSecrets,
  defaultHome,
  describeConfig,
  type LoadConfigOptions,
  type LoadedConfig,
  loadConfig,
} from './config/load-config.js';
export { type SettingReference, settingsReference } from './config/reference.js';
export type { TasklogConfig } from './config/types.js';
// Errors: every failure is one of these, with the cause kept.
export {
  AbortedError,
  BackendUnavailableError,
  ConfigError,
  type ConfigIssue,
  ConflictError,
  type ErrorCode,
  errorFromCode,
  ForbiddenError,
  IntegrityError,
  InvalidInputError,
  isTasklogError,
  NotFoundError,
  OffsetOutOfRangeError,
  TasklogError,
  UnauthorizedError,
} from './errors.js';
export { assertRealPathInside, openInside, resolveInside } from './fs-paths.js';
export { AIRFLOW_PATH_TEMPLATE, type AttemptFilter, PathTemplate } from './path-template.js';
export { maskUrlPasswords, urlPasswords } from './redact.js';
// Retention: deleting finished attempts from their store and the catalog.
export { parseDuration } from './retention/duration.js';
export {
  type PruneNote,
  type PruneOptions,
  type PruneSkipReason,
  type PruneStoreSummary,
  type PruneSummary,
  pruneAttempts,
} from './retention/prune.js';
export { TrustedStores } from './retention/trusted-stores.js';
export { backoffDelay, type RetryOptions, withRetry } from './retry.js';
export {
  DEFAULT_SENSITIVE_NAMES,
  isSensitiveName,
  MaskingStream,
  SecretMasker,
  type SecretMaskerOptions,
} from './secret-masker.js';
export {
  type AttemptEnd,
  type FollowOptions,
  type FollowResult,
  type ShipOptions,
  Shipper,
  type ShipperOptions,
  type ShipResult,
} from './shipper.js';
// The store contract, the registry and the built-in local store.
export type * from './store.js';
export { BACKENDS, type Backend, STORE_SCHEMES } from './stores/backends.js';
export { LocalStore, type LocalStoreOptions } from './stores/local/store.js';
export {
  type BackendSettings,
  type OpenStoreOptions,
  openStore,
  storeOptionsFromConfig,
} from './stores/registry.js';
