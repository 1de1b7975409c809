// Uploads one file to a tus server with tus-js-client in Node, and says what happens as JSON
// lines on stdout:
//
//   {"event": "progress", "offset": …}   now and then
//   {"event": "done", "url": …, "status": …, "fileId": …, "fileUrl": …}
//   {"event": "error", "message": …}     (and exit code 1)
//
// The one argument is a JSON object: `file`, `endpoint`, and optionally `uploadUrl` (resume that
// upload), `chunkSize`, `parallelUploads`, `uploadDataDuringCreation`, `metadata`. The
// credential comes from TUS_AUTHORIZATION, never from the command line.
'use strict'

const fs = require('fs')
const tus = require('tus-js-client')

const options = JSON.parse(process.argv[2])
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`)
const PROGRESS_STEP = 8 * 1024 * 1024

let reported = 0
const upload = new tus.Upload(fs.createReadStream(options.file), {
  endpoint: options.endpoint,
  uploadUrl: options.uploadUrl ?? null,
  headers: { Authorization: process.env.TUS_AUTHORIZATION },
  chunkSize: options.chunkSize ?? Number.POSITIVE_INFINITY,
  parallelUploads: options.parallelUploads ?? 1,
  uploadDataDuringCreation: options.uploadDataDuringCreation ?? false,
  metadata: options.metadata ?? {},
  // A resumed upload may meet the cut request still holding it for a moment (409): retried.
  retryDelays: [0, 500, 1000, 2000, 4000],
  storeFingerprintForResuming: false,
  onProgress(sent) {
    if (sent - reported >= PROGRESS_STEP) {
      reported = sent
      emit({ event: 'progress', offset: sent })
    }
  },
  onError(error) {
    emit({ event: 'error', message: String(error) })
    process.exitCode = 1
  },
  onSuccess({ lastResponse }) {
    emit({
      event: 'done',
      url: upload.url,
      status: lastResponse.getStatus(),
      fileId: lastResponse.getHeader('Stowage-File-Id') ?? null,
      fileUrl: lastResponse.getHeader('Stowage-File-Url') ?? null,
    })
  },
})
upload.start()
