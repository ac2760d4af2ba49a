/**
 * @tasklog/server: the log proxy behind a UI (`startServer`, `createApp`) and the agent on each
 * worker (`Agent`, `createAgentApp`), with their authentication.
 *
 * @packageDocumentation
 */

export { Agent, type AgentOptions, type AgentStatus } from './agent/agent.js';
export { type AgentAppDeps, createAgentApp } from './agent/agent-app.js';
export {
  airflowDbRule,
  type CompletionRule,
  idleRule,
  type TrackedAttempt,
  type Verdict,
} from './agent/completion.js';
export { type AppDeps, createApp, type TasklogApp } from './app.js';
export {
  type Authenticator,
  type JwtAuthOptions,
  jwtAuthenticator,
  readTokensFile,
  type StoredToken,
  tokensAuthenticator,
} from './auth/authenticator.js';
export { assertAuthFor, authenticatorFromConfig, isLoopback } from './auth/from-config.js';
export { mayRead, type Principal } from './auth/principal.js';
export { createToken, revokeToken } from './auth/tokens-file.js';
export { LOOPBACK_HOSTS } from './hardening.js';
export { AgentUrlPolicy } from './live/agent-url-policy.js';
export type { FollowerLimits } from './live/follow-route.js';
export { backendOf, createMetricsApp, Metrics } from './metrics.js';
export { type AgentGaugeSource, AgentMetrics } from './metrics-agent.js';
export { OPENAPI_PATH, openApiDocument } from './openapi/document.js';
export { type RunningServer, type StartServerOptions, startServer } from './server.js';
export { StoreResolver } from './store-resolver.js';
