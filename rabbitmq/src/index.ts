export * from './brokers.js';
export * from './connection.js';
export * from './messages.js';
export * from './publisher.js';
export * from './topology.js';
