export * from './backoff.js';
export * from './client-error.js';
export * from './coalesce.js';
export * from './env.js';
