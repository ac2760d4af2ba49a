/** The local folder backend (`file:///abs/path`); no SDK needed. */
export { LocalStore, type LocalStoreOptions } from './store.js';
