#!/usr/bin/env python3
"""Uploads one file to a tus server with tuspy (PyPI `tuspy`, module `tusclient`), as a Python
program would, and says what happens as JSON lines on stdout:

    {"event": "started", "url": ..., "offset": ...}   the upload's URL, and where it resumes
    {"event": "progress", "offset": ...}              after each chunk the server kept
    {"event": "done", "url": ..., "file_id": ..., "file_url": ...}

With --url-store the upload's URL is remembered in that file (tuspy's FileStorage, keyed by the
file's fingerprint), so that a second run on the same file resumes where the first stopped.
The credential comes from TUS_AUTHORIZATION, never from the command line.
"""

import argparse
import json
import os
import sys

from tusclient import client
from tusclient.storage import filestorage


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the creation URL (…/files/tus)")
    parser.add_argument("--file", required=True)
    parser.add_argument("--chunk-size", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--url-store", help="remember the upload URL here, and resume from it")
    parser.add_argument("--checksum", action="store_true", help="send Upload-Checksum (sha1)")
    parser.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    tus = client.TusClient(
        args.endpoint, headers={"Authorization": os.environ["TUS_AUTHORIZATION"]}
    )
    options = {}
    if args.url_store:
        options["store_url"] = True
        options["url_storage"] = filestorage.FileStorage(args.url_store)
    uploader = tus.uploader(
        args.file,
        chunk_size=args.chunk_size,
        metadata=dict(pair.split("=", 1) for pair in args.metadata),
        upload_checksum=args.checksum,
        # A resumed run may meet the killed run's request still holding the upload for a moment:
        # tuspy asks for the offset again and retries.
        retries=10,
        retry_delay=0.5,
        **options,
    )
    if not uploader.url:
        # Created before any byte goes, so that the URL is stored (and said) up front.
        uploader.set_url(uploader.create_url())
        uploader.offset = 0
    emit(event="started", url=uploader.url, offset=uploader.offset)

    size = uploader.get_file_size()
    while uploader.offset < size:
        uploader.upload_chunk()
        emit(event="progress", offset=uploader.offset)

    headers = uploader.request.response_headers if uploader.request else {}
    emit(
        event="done",
        url=uploader.url,
        file_id=headers.get("stowage-file-id"),
        file_url=headers.get("stowage-file-url"),
    )


if __name__ == "__main__":
    main()
