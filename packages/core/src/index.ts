export * from './attempt-key.js';
export * from './catalog/catalog.js';
export * from './config/types.js';
export * from './errors.js';
export * from './path-template.js';
export * from './store.js';
