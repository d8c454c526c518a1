#!/usr/bin/env node
// Cross-language check of the contract: a Node.js client that knows nothing but the .proto files
// (loaded at run time with @grpc/proto-loader, no generated code) lists the caller's bundles.
//
// Usage: node tests/node/list_bundles.js [ADDRESS] [API_KEY]
//   ADDRESS defaults to $LAUNCH_ADDRESS (host:port), API_KEY to $LAUNCH_API_KEY.
// Prints {"names": [...]} (newest first, every page) on stdout; on an RPC error prints
// "<STATUS_NAME>: <details>" on stderr and exits 1.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');

function usage(message) {
  process.stderr.write(`${message}\nusage: node list_bundles.js [ADDRESS] [API_KEY]\n`);
  process.exit(2);
}

function loadService() {
  const definition = protoLoader.loadSync('launch/v1/model_bundle.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).launch.v1.ModelBundleService;
}

function listPage(client, metadata, pageToken) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 30000);
    client.ListModelBundles({ page_size: 1000, page_token: pageToken }, metadata, { deadline }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

async function main() {
  const address = process.argv[2] || process.env.LAUNCH_ADDRESS;
  const apiKey = process.argv[3] || process.env.LAUNCH_API_KEY;
  if (!address) usage('missing ADDRESS (argument 1 or LAUNCH_ADDRESS)');
  if (!apiKey) usage('missing API_KEY (argument 2 or LAUNCH_API_KEY)');

  const ModelBundleService = loadService();
  const client = new ModelBundleService(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${apiKey}`);

  const names = [];
  let token = '';
  try {
    do {
      const page = await listPage(client, metadata, token);
      for (const bundle of page.model_bundles) names.push(bundle.name);
      token = page.next_page_token;
    } while (token);
  } catch (err) {
    const statusName = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) || String(err.code);
    process.stderr.write(`${statusName}: ${err.details}\n`);
    client.close();
    process.exit(1);
  }
  client.close();
  process.stdout.write(`${JSON.stringify({ names })}\n`);
}

main();
