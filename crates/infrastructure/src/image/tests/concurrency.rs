//! The bound on renders at once and on callers waiting for one.

use super::*;

fn single(queue: usize, wait: Duration) -> Arc<PixelRenderer> {
    Arc::new(PixelRenderer::new(ImageRendererSettings {
        concurrency: 1,
        queue,
        wait,
    }))
}

async fn render_small(renderer: &PixelRenderer) -> Result<Rendered, RenderError> {
    let source = source_png();
    let header = header(&source);
    renderer
        .reserve_and_render(
            Bytes::from(source),
            header,
            spec(Some(4), None, Fit::Cover),
            OutputFormat::Png,
        )
        .await
}

#[tokio::test]
async fn busy_when_every_slot_is_taken_and_the_queue_is_full() {
    let renderer = single(0, Duration::from_secs(30));
    // A render in flight holds the only slot.
    let in_flight = Arc::clone(&renderer.slots).try_acquire_owned().unwrap();
    let out = render_small(&renderer).await;
    assert!(
        matches!(
            out,
            Err(RenderError::Busy {
                retry_after_secs: 1
            })
        ),
        "{out:?}"
    );
    drop(in_flight);
    render_small(&renderer).await.unwrap();
}

#[tokio::test]
async fn a_queued_caller_gets_the_slot_when_it_frees() {
    let renderer = single(1, Duration::from_secs(30));
    let in_flight = Arc::clone(&renderer.slots).try_acquire_owned().unwrap();
    let queued = tokio::spawn({
        let renderer = Arc::clone(&renderer);
        async move { render_small(&renderer).await }
    });
    while renderer.waiting.load(Ordering::Acquire) == 0 {
        tokio::task::yield_now().await;
    }
    // The queue (of one) is full: the next caller is refused at once.
    let out = render_small(&renderer).await;
    assert!(matches!(out, Err(RenderError::Busy { .. })), "{out:?}");
    drop(in_flight);
    queued.await.unwrap().unwrap();
    assert_eq!(renderer.waiting.load(Ordering::Acquire), 0);
}

#[tokio::test]
async fn a_queued_caller_gives_up_after_the_wait() {
    let renderer = single(4, Duration::from_millis(20));
    let _in_flight = Arc::clone(&renderer.slots).try_acquire_owned().unwrap();
    let out = render_small(&renderer).await;
    assert!(matches!(out, Err(RenderError::Busy { .. })), "{out:?}");
    assert_eq!(renderer.waiting.load(Ordering::Acquire), 0);
}
