import 'reflect-metadata';

export * from './errors/index.js';
