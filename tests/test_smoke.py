QUERY = "{ experiments { nodes { id name runCount } } }"


async def test_default_experiment_exists(gql):
    data = await gql(QUERY)
    assert data["experiments"]["nodes"] == [{"id": "0", "name": "Default", "runCount": 0}]
