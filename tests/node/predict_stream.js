#!/usr/bin/env node
// Cross-language check of streaming: a Node.js client that knows nothing but the .proto files
// (loaded at run time with @grpc/proto-loader, no generated code) calls the server-streaming
// InferenceService.PredictStream and prints each value the moment its message arrives, so a caller
// can see that values come as they are yielded, not all at the end. A message carries one value in
// `result` and, when the replica had more waiting, the ones after it in `more`.
//
// Usage: node tests/node/predict_stream.js ADDRESS API_KEY ENDPOINT [ARGS_JSON] [DEADLINE_S]
//   An empty ADDRESS means $LAUNCH_ADDRESS (host:port), an empty API_KEY $LAUNCH_API_KEY;
//   ARGS_JSON (the predict function's keyword arguments) defaults to "{}", DEADLINE_S (the
//   deadline of the whole stream) to 60.
// Prints one JSON line per value on stdout: {"state": "RESULT_STATE_...", "result": "<JSON text>",
// "traceback": "..."}. On an RPC error (after any messages already printed) prints
// "<STATUS_NAME>: <details>" on stderr and exits 1.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const USAGE = 'usage: node predict_stream.js ADDRESS API_KEY ENDPOINT [ARGS_JSON] [DEADLINE_S]';

function usage(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function loadService() {
  const definition = protoLoader.loadSync('launch/v1/inference.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).launch.v1.InferenceService;
}

function parseArgs(argv) {
  const [address, apiKey, endpoint, argsJson, deadline] = argv;
  const parsed = {
    address: address || process.env.LAUNCH_ADDRESS,
    apiKey: apiKey || process.env.LAUNCH_API_KEY,
    endpoint,
    argsJson: argsJson || '{}',
    deadlineS: Number(deadline || 60),
  };
  if (!parsed.address) usage('missing ADDRESS (argument 1 or LAUNCH_ADDRESS)');
  if (!parsed.apiKey) usage('missing API_KEY (argument 2 or LAUNCH_API_KEY)');
  if (!parsed.endpoint) usage('missing ENDPOINT');
  if (!(parsed.deadlineS > 0)) usage(`DEADLINE_S must be a positive number, not ${deadline}`);
  return parsed;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const InferenceService = loadService();
  const client = new InferenceService(args.address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${args.apiKey}`);

  const request = { endpoint_name: args.endpoint, input: { args_json: args.argsJson, return_pickled: false } };
  const deadline = new Date(Date.now() + args.deadlineS * 1000);
  const call = client.PredictStream(request, metadata, { deadline });

  call.on('data', (message) => {
    for (const { state, result, traceback } of [message.result || {}, ...(message.more || [])]) {
      // stdout to a pipe is synchronous on POSIX, so each line leaves before the next message is read.
      process.stdout.write(`${JSON.stringify({ state, result, traceback })}\n`);
    }
  });
  call.on('error', (err) => {
    const statusName = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) || String(err.code);
    process.stderr.write(`${statusName}: ${err.details}\n`);
    client.close();
    process.exitCode = 1;
  });
  call.on('end', () => client.close());
}

main();
