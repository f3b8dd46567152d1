from companion.pipeline import claims


def test_registry_is_consistent():
    all_claims = claims.all_claims()
    assert all_claims, "registry is empty"
    papers = claims.papers()
    for claim in all_claims.values():
        assert claim.paper in papers
        assert claim.statement.strip()
        assert claim.notebook.split("/")[0] == claim.paper or claim.paper == "zoo"


def test_every_claim_has_a_notebook_that_exists():
    from companion.pipeline.paths import notebooks_dir

    for claim in claims.all_claims().values():
        assert (notebooks_dir() / f"{claim.notebook}.ipynb").exists(), claim.id
