//! The shipped models through the crate's real path (decode, crop, tract): the product
//! model tells look-alike variants of one brand apart on held-out photos, enrols new SKUs
//! from three photos, and refuses products it does not know; a second ONNX backbone this
//! project did not train loads from a card of the same format; models that do not match
//! their card are refused at load with the reason; barcodes on photographed packages read.

use std::path::{Path, PathBuf};
use tillmesh_vision::{Embedder, Gallery, ModelCard, VisionError, eval};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

#[test]
fn the_product_model_separates_look_alikes_enrols_new_skus_and_abstains() {
    let m = Embedder::load(&models().join("products.json")).unwrap();
    let r = eval::evaluate(&m, &models().join("eval"), None).unwrap();
    println!("{r:?}");
    assert_eq!(
        r.queries,
        (4, 4, 4),
        "the small set is 4 known, 4 new, 4 unknown"
    );
    assert_eq!(r.skus, 8);
    // Four variants of one brand, and four of a brand the model never saw.
    assert_eq!(r.known_top1, 1.0, "{r:?}");
    assert!(r.new_top1 >= 0.75, "{r:?}");
    assert!(r.false_accept <= 0.25, "{r:?}");
    // Embeddings are unit vectors of the card's size.
    let photo = std::fs::read(models().join("eval/known/query/V0000/0.jpg")).unwrap();
    let e = m.embed_image(&photo).unwrap();
    assert_eq!(e.len(), m.card().output.dim);
    assert!((e.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    // The same photo twice gives the same embedding.
    assert_eq!(e, m.embed_image(&photo).unwrap());
}

#[test]
fn a_backbone_this_project_did_not_train_loads_from_its_card() {
    let m = Embedder::load(&models().join("efficientnet-lite0.json")).unwrap();
    assert_eq!(m.card().output.dim, 1000);
    let photo = std::fs::read(models().join("eval/known/query/V0000/0.jpg")).unwrap();
    let e = m.embed_image(&photo).unwrap();
    assert_eq!(e.len(), 1000);
    let mut g = Gallery::new(1000);
    g.add("V0000", e.clone()).unwrap();
    let r = g.recognize(&e, 3, 0.99).unwrap();
    assert_eq!(r.accepted.as_deref(), Some("V0000"));
}

#[test]
fn a_model_that_does_not_match_its_card_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut card = ModelCard::load(&models().join("products.json")).unwrap();
    let write = |c: &ModelCard| {
        let p = dir.path().join("card.json");
        std::fs::write(&p, serde_json::to_string(c).unwrap()).unwrap();
        p
    };
    card.output.dim = 64;
    let err = Embedder::load(&write(&card)).unwrap_err().to_string();
    assert!(
        err.contains("128 values per image; the card says 64"),
        "{err}"
    );
    card.output.dim = 128;
    card.input.name = "pixels".into();
    let err = Embedder::load(&write(&card)).unwrap_err().to_string();
    assert!(err.contains("input is named \"image\""), "{err}");
    card.input.name = "image".into();
    card.file = dir.path().join("missing.onnx");
    assert!(matches!(
        Embedder::load(&write(&card)),
        Err(VisionError::Model { .. })
    ));
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"not a model").unwrap();
    card.file = junk;
    let err = Embedder::load(&write(&card)).unwrap_err().to_string();
    assert!(err.contains("does not load"), "{err}");
    card.input.std = [0.0; 3];
    let err = Embedder::load(&write(&card)).unwrap_err().to_string();
    assert!(err.contains("std"), "{err}");
    // Bad uploads never reach the model.
    let m = Embedder::load(&models().join("products.json")).unwrap();
    assert!(matches!(m.embed_image(b""), Err(VisionError::Empty)));
    assert!(matches!(
        m.embed_image(b"%PDF-1.7"),
        Err(VisionError::NotAnImage)
    ));
}

/// Barcodes printed on photographed packages (drawn by `scripts/ood_counter.py
/// --barcode-photo`): read straight and turned by 40 degrees.
#[test]
fn barcodes_on_photographed_packages_are_read() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/eval/barcode");
    let mut read = Vec::new();
    for (file, code) in [
        ("SKU00002.jpg", "8932462819482"),
        ("SKU00005-turned.jpg", "8939711471040"),
        ("unlisted.jpg", "4006381333931"),
    ] {
        let img = tillmesh_vision::frame::decode(&std::fs::read(dir.join(file)).unwrap()).unwrap();
        let c = tillmesh_vision::barcode::scan(&img);
        let got = c.as_ref().map(|c| (c.format.as_str(), c.text.as_str()));
        read.push((file, got == Some(("ean13", code)), format!("{c:?}")));
    }
    assert!(read.iter().all(|r| r.1), "{read:?}");
}
